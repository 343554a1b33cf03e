"""Access to the validation data in ``../shared/data`` (read in place, converted only into temp folders).

The data is not part of the project (some licences forbid redistributing derivatives), so tests that use
it skip with a clear message when the folder is absent, as on a user's machine.
"""

from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from TTVPrognosisLib.formats.io import read_segmentation
from TTVPrognosisLib.formats.segments import LabelVolume, Segment

REPOSITORY = Path(__file__).resolve().parents[3]
SKIP_REASON = ("validation data not found: put the shared data folder beside the repository (../shared/data) "
               "or set TTVPROGNOSIS_SHARED_DATA")

IRCAD_CASES = {"ircad01": "3Dircadb1.1", "ircad02": "3Dircadb1.2", "ircad04": "3Dircadb1.4",
               "ircad06": "3Dircadb1.6", "ircad08": "3Dircadb1.8", "ircad17": "3Dircadb1.17"}


def shared_data_dir() -> Path | None:
    """The shared data folder, or None when this machine does not have it."""
    configured = os.environ.get("TTVPROGNOSIS_SHARED_DATA")
    folder = Path(configured) if configured else REPOSITORY.parent / "shared" / "data"
    return folder if (folder / "reference-values.csv").is_file() else None


@dataclass
class ReferenceLesion:
    """One lesion as SimpleITK measured it (reference-values.csv), centroid converted to RAS."""

    voxel_count: int
    feret_diameter_mm: float
    axial_diameter_mm: float
    centroid_ras: np.ndarray


@dataclass
class ReferenceCase:
    """Union TTV, lesion count and per-lesion values of one case."""

    ttv_voxel_count: int
    ttv_ml: float
    lesion_count: int
    lesions: list[ReferenceLesion] = field(default_factory=list)


def reference_case(case: str) -> ReferenceCase:
    """What SimpleITK computed on ``case`` (rows of tool SimpleITK in reference-values.csv)."""
    data = shared_data_dir()
    assert data is not None, SKIP_REASON
    with open(data / "reference-values.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["case"] == case and row["tool"].startswith("SimpleITK")]
    totals = {row["feature"]: float(row["value"]) for row in rows if row["label"].startswith("TTV")}
    per_lesion: dict[str, dict[str, float]] = {}
    for row in rows:
        if "#L" in row["label"]:
            per_lesion.setdefault(row["label"], {})[row["feature"]] = float(row["value"])
    lesions = [ReferenceLesion(int(values["voxel_count"]), values["feret_diameter_3d_mm"],
                               values["axial_longest_diameter_mm(per-slice 2D Feret)"],
                               np.array([-values["centroid_x_mm(LPS)"], -values["centroid_y_mm(LPS)"],
                                         values["centroid_z_mm(LPS)"]]))
               for values in per_lesion.values()]
    return ReferenceCase(int(totals["TTV_voxel_count"]), totals["TTV_mL"], int(totals["lesion_count_26conn"]),
                         lesions)


def extract_ircad_masks(case: str, scratch: Path, structures: list[str] | None = None) -> dict[str, Path]:
    """Unzip the mask series of an IRCADb patient; returns one DICOM folder per structure."""
    data = shared_data_dir()
    assert data is not None, SKIP_REASON
    with zipfile.ZipFile(data / "3d-ircadb-01" / IRCAD_CASES[case] / "MASKS_DICOM.zip") as archive:
        names = [name for name in archive.namelist() if name.count("/") == 2 and not name.endswith("/")]
        available = sorted({name.split("/")[1] for name in names})
        wanted = [name for name in available if structures is None or name in structures]
        archive.extractall(scratch, [name for name in names if name.split("/")[1] in wanted])
    return {name: scratch / "MASKS_DICOM" / name for name in wanted}


def extract_ircad_ct(case: str, scratch: Path) -> Path:
    """Unzip the CT series of an IRCADb patient (only patient 1 has one here)."""
    data = shared_data_dir()
    assert data is not None, SKIP_REASON
    with zipfile.ZipFile(data / "3d-ircadb-01" / IRCAD_CASES[case] / "PATIENT_DICOM.zip") as archive:
        archive.extractall(scratch)
    return scratch / "PATIENT_DICOM"


def ircad_segmentation(case: str, scratch: Path) -> LabelVolume:
    """Tumour masks (one layer and segment each, named as IRCAD names them) plus the liver, from DICOM."""
    folders = extract_ircad_masks(case, scratch)
    chosen = [name for name in folders if name.startswith("livertumor")] + ["liver"]
    layers, segments, geometry = [], [], None
    for name in chosen:
        structure = read_segmentation(folders[name])  # a DICOM series; non-zero (1 or 255) is inside
        geometry = geometry or structure.geometry
        segments.append(Segment(name, name, len(layers), 1))
        layers.append((structure.layers[0] != 0).astype(np.uint8))
    return LabelVolume(layers, geometry, segments, f"3D-IRCADb {IRCAD_CASES[case]}")


@dataclass(frozen=True)
class LabelFileCase:
    """A label image in the shared data and how to read it (which labels are not lesions)."""

    case: str
    relative_path: str
    exclude: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        data = shared_data_dir()
        assert data is not None, SKIP_REASON
        return data / self.relative_path


LABEL_FILE_CASES = (
    LabelFileCase("kits19_case_00001", "kits19/data/case_00001/segmentation.nii.gz", ("1",)),
    LabelFileCase("kits19_case_00050", "kits19/data/case_00050/segmentation.nii.gz", ("1",)),
    LabelFileCase("kits19_case_00104", "kits19/data/case_00104/segmentation.nii.gz", ("1",)),
    LabelFileCase("pyradiomics_brain1", "pyradiomics/brain1_label.nrrd"),
    LabelFileCase("pyradiomics_brain2", "pyradiomics/brain2_label.nrrd"),
    LabelFileCase("pyradiomics_breast1", "pyradiomics/breast1_label.nrrd"),
    LabelFileCase("pyradiomics_lung1", "pyradiomics/lung1_label.nrrd"),
    LabelFileCase("pyradiomics_lung2", "pyradiomics/lung2_label.nrrd"),
    LabelFileCase("mirp_STS_001_CT", "mirp/sts_images/STS_001/CT/nifti/mask/mask.nii.gz"),
    LabelFileCase("mirp_STS_002_CT", "mirp/sts_images/STS_002/CT/nifti/mask/mask.nii.gz"),
    LabelFileCase("ibsi1_ct_phantom", "mirp/ibsi_1_ct_radiomics_phantom/nifti/mask/mask.nii.gz"),
    LabelFileCase("ibsi1_digital_phantom", "mirp/ibsi_1_digital_phantom/nifti/mask/mask.nii.gz"),
)
