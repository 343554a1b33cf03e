"""A segmentation as a standard DICOM Segmentation object (highdicom) on the CT series it was drawn on.

PACS, OHIF and Slicer's QuantitativeReporting read DICOM SEG; it must reference the CT's study, series, frame of
reference and slices, so it is made from the CT series itself, and the segmentation must lie exactly on that
series' voxel grid (any part of it; axes may be flipped or permuted, as long as every voxel falls on a CT
voxel). Anything else is refused: resampling here would change the TTV without anyone seeing it.

Coding (DICOM PS3.16; codes from pydicom's tables):
- lesion segments: category SCT 49755003 "Morphologically abnormal structure", type SCT 14799000 "Neoplasm,
  secondary" (metastasis; CID 7151), anatomic region SCT 10200004 "Liver";
- liver segments: category SCT 91723000 "Anatomical Structure", the code DICOM PS3.16 CID 7150 "Segmentation
  Property Category" lists (value set version 2019-11-10, as pydicom's tables have it), type SCT 10200004
  "Liver". Slicer's terminology files code the same category as SCT 123037004 (SNOMED CT "Body structure");
  this tool's reader takes both as anatomy.
Each segment keeps its name as Segment Label; its role and Verified state go into Segment Description
(0062,0006) as ``TTVPrognosis role=lesion; verified=yes`` (:func:`..formats.dicom_seg.segment_description_text`:
this tool's reader parses it back, so a round trip keeps the Verified state; people read it in any DICOM
viewer). Segments excluded by the user are left out; empty lesion segments are left out with a warning (they
hold no voxel, so the TTV is the same).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError
from ..formats.dicom_seg import segment_description_text
from ..formats.segments import ROLE_LESION, ROLE_LIVER, LabelVolume, with_roles
from ..geometry import Geometry

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
POSITION_TOLERANCE_MM = 0.01  # DICOM positions are decimal strings; this is far below any voxel size
ORIENTATION_TOLERANCE = 1e-4
INDEX_TOLERANCE = 0.01  # of a voxel: a segmentation is "on the grid" when its voxels fall this close to CT voxels


@dataclass
class CtSeries:
    """A CT series read for export: its slices (sorted along the slice normal) and their voxel grid."""

    datasets: list[Any]
    geometry: Geometry
    series_instance_uid: str
    frame_of_reference_uid: str


@dataclass
class ExportSummary:
    """What was written: segments (number, label, role, verified, voxels), UIDs, the TTV it holds, warnings."""

    path: Path
    series_instance_uid: str
    frame_of_reference_uid: str
    study_instance_uid: str
    segments: list[dict]
    ttv_ml: float
    warnings: list[str] = field(default_factory=list)
    dataset: Any = field(default=None, repr=False)  # the SEG written (for an SR that references it)
    ct_datasets: list = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {"output": str(self.path), "referenced_series_instance_uid": self.series_instance_uid,
                "frame_of_reference_uid": self.frame_of_reference_uid,
                "study_instance_uid": self.study_instance_uid, "segments": self.segments, "ttv_ml": self.ttv_ml,
                "warnings": list(self.warnings)}


def _dicom_libraries():
    try:
        import highdicom
        import pydicom
    except ImportError as error:
        raise InputError("Writing DICOM SEG needs pydicom and highdicom: pip install pydicom highdicom.") from error
    return pydicom, highdicom


def read_ct_series(folder: str | os.PathLike) -> CtSeries:
    """Read the headers of a single-frame CT (or MR/PT) series from a folder and check it forms a regular grid."""
    pydicom, _ = _dicom_libraries()
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--image must be the folder of the CT's DICOM files; '{root}' is not a folder.")
    datasets = []
    for path in sorted(item for item in root.rglob("*") if item.is_file()):
        try:
            dataset = pydicom.dcmread(path)
        except Exception:  # not a DICOM file (a DICOMDIR's neighbours, notes): not part of the series
            continue
        if "ImagePositionPatient" in dataset and "PixelData" in dataset:
            datasets.append(dataset)
    if not datasets:
        raise InputError(f"The folder '{root}' holds no DICOM image slices.")
    series = {str(dataset.SeriesInstanceUID) for dataset in datasets}
    if len(series) > 1:
        raise InputError(f"The folder '{root}' holds {len(series)} DICOM series; point --image to a folder with "
                         f"only the CT series the segmentation was drawn on.")
    if any(int(dataset.get("NumberOfFrames", 1) or 1) > 1 for dataset in datasets):
        raise InputError("The CT is a multi-frame (enhanced) DICOM object; export-seg needs a classic series of "
                         "single-slice files.")
    frames = {str(dataset.get("FrameOfReferenceUID", "") or "") for dataset in datasets}
    if frames == {""}:
        raise InputError(f"The CT slices in '{root}' have no Frame of Reference UID (a required DICOM attribute, "
                         f"missing in some anonymised or converted series); a DICOM SEG cannot be placed on them. "
                         f"Export on the CT series as the scanner or PACS sent it.")
    if len(frames) != 1:
        raise InputError(f"The CT slices in '{root}' do not share one Frame of Reference UID; a DICOM SEG cannot "
                         f"reference them.")
    return _sorted_series(datasets, root)


def _sorted_series(datasets: list, root: Path) -> CtSeries:
    orientation = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    spacing = np.asarray(datasets[0].PixelSpacing, dtype=float)
    shape = (int(datasets[0].Rows), int(datasets[0].Columns))
    for dataset in datasets:
        if (not np.allclose(np.asarray(dataset.ImageOrientationPatient, dtype=float), orientation,
                            atol=ORIENTATION_TOLERANCE)
                or not np.allclose(np.asarray(dataset.PixelSpacing, dtype=float), spacing, atol=1e-6)
                or (int(dataset.Rows), int(dataset.Columns)) != shape):
            raise InputError(f"The slices in '{root}' differ in orientation, pixel spacing or size; they do not "
                             f"form one volume.")
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    positions = np.array([np.asarray(dataset.ImagePositionPatient, dtype=float) for dataset in datasets])
    order = np.argsort(positions @ normal, kind="stable")
    datasets = [datasets[index] for index in order]
    positions = positions[order]
    distances = (positions - positions[0]) @ normal
    if len(datasets) > 1:
        steps = np.diff(distances)
        if np.any(steps < POSITION_TOLERANCE_MM):
            raise InputError(f"Two slices in '{root}' lie at the same position: the series holds duplicates.")
        if np.ptp(steps) > POSITION_TOLERANCE_MM * 10:
            raise InputError(f"The slices in '{root}' are not evenly spaced (steps {steps.min():.3f} to "
                             f"{steps.max():.3f} mm; missing slices?); export-seg needs a regular grid.")
        off_axis = positions - positions[0] - np.outer(distances, normal)
        if np.abs(off_axis).max() > POSITION_TOLERANCE_MM * 10:
            raise InputError(f"The slices in '{root}' are not stacked along their normal (a tilted gantry); "
                             f"export-seg needs a regular grid.")
        slice_step = float(steps.mean())
    else:
        slice_step = float(datasets[0].get("SliceThickness", 1.0) or 1.0)
    matrix = np.eye(4)
    matrix[:3, 0] = row_direction * spacing[1]
    matrix[:3, 1] = column_direction * spacing[0]
    matrix[:3, 2] = normal * slice_step
    matrix[:3, 3] = positions[0]
    geometry = Geometry.from_lps(matrix, (len(datasets), *shape))
    return CtSeries(datasets, geometry, str(datasets[0].SeriesInstanceUID), str(datasets[0].FrameOfReferenceUID))


def place_on_grid(mask: np.ndarray, grid: Geometry, reference: Geometry) -> np.ndarray:
    """``mask`` (on ``grid``) as an array on ``reference``, when every voxel of one is a voxel of the other.

    Axes may be permuted or flipped and the grid may be a part of the reference (Slicer stores segmentations on
    a sub-extent). Voxels outside the reference are allowed only when empty. Raises InputError otherwise.
    """
    mapping = np.linalg.inv(reference.ijk_to_ras) @ grid.ijk_to_ras
    rotation, shift = mapping[:3, :3], mapping[:3, 3]
    permutation = np.rint(rotation)
    if (not np.allclose(rotation, permutation, atol=ORIENTATION_TOLERANCE)
            or not np.all(np.abs(permutation).sum(axis=0) == 1) or not np.all(np.abs(permutation).sum(axis=1) == 1)
            or not np.allclose(shift, np.rint(shift), atol=INDEX_TOLERANCE)):
        raise InputError(f"The segmentation is not on the CT's voxel grid (segmentation: {grid.describe()}; CT: "
                         f"{reference.describe()}). Export it from a segmentation made on this CT (in Slicer: "
                         f"Segment Editor, 'Specify geometry' = the CT), or give the CT series it was drawn on.")
    shift = np.rint(shift).astype(int)
    source_axes = [int(np.argmax(np.abs(permutation[axis]))) for axis in range(3)]  # reference ijk <- grid ijk
    signs = [int(permutation[axis, source_axes[axis]]) for axis in range(3)]
    placed = np.transpose(mask, [2 - source_axes[2 - position] for position in range(3)])
    starts = []
    for position in range(3):  # kji positions of the reference
        axis = 2 - position
        if signs[axis] < 0:
            placed = np.flip(placed, axis=position)
        length = placed.shape[position]
        starts.append(shift[axis] if signs[axis] > 0 else shift[axis] - (length - 1))
    full = np.zeros(reference.shape_kji, dtype=bool)
    source, target = [], []
    for position, start in enumerate(starts):
        low, high = max(start, 0), min(start + placed.shape[position], reference.shape_kji[position])
        if high <= low:
            low = high = 0
        source.append(slice(low - start, high - start))
        target.append(slice(low, high))
    inside = placed[tuple(source)]
    if int(np.count_nonzero(inside)) != int(np.count_nonzero(placed)):
        raise InputError("Part of the segmentation lies outside the CT series; it cannot be stored on it. Check "
                         "that --image is the CT the segmentation was drawn on.")
    full[tuple(target)] = inside
    return full


def _codes():
    from pydicom.sr.codedict import codes

    return {
        ROLE_LESION: (codes.SCT.MorphologicallyAbnormalStructure, codes.cid7151.NeoplasmSecondary, [codes.SCT.Liver]),
        ROLE_LIVER: (codes.cid7150.AnatomicalStructure, codes.SCT.Liver, None),
    }


def export_dicom_seg(volume: LabelVolume, ct_folder: str | os.PathLike, output: str | os.PathLike,
                     exclude: tuple[str, ...] | list[str] = (), liver: tuple[str, ...] | list[str] = ()
                     ) -> ExportSummary:
    """Write ``volume``'s lesion and liver segments as a DICOM SEG referencing the CT series in ``ct_folder``."""
    _, highdicom = _dicom_libraries()
    from pydicom.uid import generate_uid

    series = read_ct_series(ct_folder)
    volume, warnings = with_roles(volume, exclude=exclude, liver=liver)
    kept = [segment for segment in volume.segments if segment.role in (ROLE_LESION, ROLE_LIVER)]
    masks, descriptions, rows = [], [], []
    codes = _codes()
    for segment in kept:
        mask = place_on_grid(volume.mask([segment]), volume.geometry, series.geometry)
        voxels = int(np.count_nonzero(mask))
        if voxels == 0:
            warnings.append(f"Segment '{segment.name}' is empty and is left out of the DICOM SEG.")
            continue
        category, kind, regions = codes[segment.role]
        number = len(masks) + 1
        description = highdicom.seg.SegmentDescription(
            segment_number=number, segment_label=segment.name[:64], segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.MANUAL,
            anatomic_regions=regions)
        description.SegmentDescription = segment_description_text(segment.role, segment.verified)
        masks.append(mask)
        descriptions.append(description)
        rows.append({"number": number, "label": segment.name, "role": segment.role, "verified": segment.verified,
                     "voxels": voxels})
    if not masks:
        raise InputError("The segmentation has no lesion or liver voxels on the CT; there is nothing to export.")
    lesion_union = np.zeros(series.geometry.shape_kji, dtype=bool)
    for mask, row in zip(masks, rows):
        if row["role"] == ROLE_LESION:
            lesion_union |= mask
    expected = int(np.count_nonzero(volume.mask(volume.segments_with_role(ROLE_LESION))))
    if int(np.count_nonzero(lesion_union)) != expected:  # never store other voxels than were measured
        raise InputError("Internal check failed: the lesion voxels placed on the CT differ from the segmentation's.")
    pixel_array = np.stack(masks, axis=-1)
    seg = highdicom.seg.Segmentation(
        source_images=series.datasets, pixel_array=pixel_array,
        segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=generate_uid(), series_number=9001, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="TTVPrognosis", manufacturer_model_name="TTVPrognosis", software_versions=__version__,
        device_serial_number="0", content_label="TTV", content_description="Liver and liver metastases",
        series_description="TTVPrognosis segmentation")
    seg.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: segment names outside ASCII are kept as written
    _save(seg, Path(output))
    ttv = int(np.count_nonzero(lesion_union)) * series.geometry.voxel_volume_ml
    return ExportSummary(Path(output), series.series_instance_uid, series.frame_of_reference_uid,
                         str(series.datasets[0].StudyInstanceUID), rows, ttv, warnings, seg, series.datasets)


def _save(dataset, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    try:
        dataset.save_as(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise InputError(f"Could not write '{path}' ({error.strerror or error}).") from error
