"""Several files for one time point: a folder of per-structure masks, each one named segment.

This is how 3D-IRCADb ships its masks (``MASKS_DICOM/liver``, ``livertumor01``, ``artery``, ``bone``... one
DICOM series per structure, inside values 255, 1 or both) and how TotalSegmentator writes its default output
(``liver.nii.gz``, ``spleen.nii.gz``... one NIfTI per class; ``liver_tumor``/``liver_lesions`` from its liver
tasks). Each mask becomes a segment named after its file or subfolder, so roles come from the names
(``roles.py``): the liver is the liver, other anatomy is never a lesion.

Rules: every non-zero voxel is inside (values 1 and 255 both mean inside); a file holding other sets of
values is several structures, not a mask, and is refused; every mask must lie on the same voxel grid
(refused otherwise, naming both files). Masks that do not overlap share a label layer, so a folder of a
hundred structures costs a few layers of memory, not a hundred; empty masks are left out with a note.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from .segments import LabelVolume, Segment

MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
# Files that may sit beside masks without being one (licences, notes, previews, nnU-Net/TotalSegmentator json).
IGNORED_SUFFIXES = (".txt", ".md", ".json", ".csv", ".pdf", ".png", ".jpg", ".jpeg", ".html", ".xml", ".zip",
                    ".raw", ".zraw", ".gz")
INSIDE_VALUE_SETS = ({1}, {255}, {1, 255})
GRID_TOLERANCE_MM = 1e-3


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _mask_name(path: Path) -> str:
    lower = path.name.lower()
    for suffix in MASK_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[:-len(suffix)]
    return path.name


def _is_mask_file(path: Path) -> bool:
    lower = path.name.lower()
    return lower.endswith(MASK_SUFFIXES) and not lower.endswith(".seg.nrrd")


def mask_sources(folder: Path) -> list[tuple[str, Path]] | None:
    """The masks of ``folder`` as (segment name, file or series folder), or None when ``folder`` is not a
    folder of masks (e.g. the slices of one DICOM series, read by the image reader)."""
    try:
        entries = sorted(path for path in folder.iterdir() if _visible(path))
    except OSError as error:
        raise InputError(f"Cannot list the folder '{folder}' ({error.strerror or error}).") from error
    files = [path for path in entries if path.is_file()]
    loose = [path for path in files if not _is_mask_file(path) and not path.name.lower().endswith(IGNORED_SUFFIXES)]
    if loose:
        return None  # slices of a DICOM series (or other data): not a folder of masks
    sources = [(_mask_name(path), path) for path in files if _is_mask_file(path)]
    sources += [(path.name, path) for path in entries if path.is_dir() and any(_visible(inner) and inner.is_file()
                                                                               for inner in path.iterdir())]
    return sorted(sources, key=lambda source: _natural_key(source[0])) or None


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _box(mask: np.ndarray) -> tuple[slice, ...] | None:
    where = [np.flatnonzero(mask.any(axis=tuple(other for other in range(3) if other != axis))) for axis in range(3)]
    if any(found.size == 0 for found in where):
        return None
    return tuple(slice(int(found[0]), int(found[-1]) + 1) for found in where)


def read_mask_folder(folder: Path) -> LabelVolume:
    """Read a folder of per-structure masks (see the module docstring) as one segmentation."""
    from .io import read_segmentation

    sources = mask_sources(folder)
    if not sources:
        raise InputError(f"'{folder}' holds no masks (NIfTI/NRRD/MetaImage files or DICOM series folders).")
    layers: list[np.ndarray] = []
    next_value: list[int] = []
    segments: list[Segment] = []
    empty: list[str] = []
    warnings: list[str] = []
    geometry = first_source = None
    for name, path in sources:
        structure = read_segmentation(path)
        if len(structure.layers) != 1:
            raise InputError(f"'{path}' in the mask folder '{folder}' is a segmentation with several layers; a "
                             f"folder of masks holds one structure per file. Give that file on its own.")
        voxels = structure.layers[0]
        values = {segment.label_value for segment in structure.segments}
        if values and values not in INSIDE_VALUE_SETS and len(values) > 1:
            shown = ", ".join(map(str, sorted(values)[:8])) + (f" ... ({len(values)} values)" if len(values) > 8
                                                               else "")
            raise InputError(f"'{path}' in the mask folder '{folder}' holds the label values {shown}: several "
                             f"structures (or an image), not one mask (inside is 1 or 255). Give that file on its own, "
                             f"or split it into one mask per structure.")
        if geometry is None:
            geometry, first_source = structure.geometry, path
        elif structure.geometry.shape_kji != geometry.shape_kji or not np.allclose(
                structure.geometry.ijk_to_ras, geometry.ijk_to_ras, rtol=0, atol=GRID_TOLERANCE_MM):
            raise InputError(f"The masks in '{folder}' are on different voxel grids: '{first_source.name}' has "
                             f"{geometry.shape_kji[::-1]} voxels (i, j, k) and '{path.name}' "
                             f"{structure.geometry.shape_kji[::-1]}, or their positions or spacings differ. All masks "
                             f"of one time point must be on the grid of the same CT; resample them on one grid first.")
        warnings += [warning for warning in structure.warnings if "segment names read from" not in warning]
        inside = voxels != 0
        box = _box(inside)
        if box is None:
            empty.append(name)
            continue
        crop = inside[box]
        for index, layer in enumerate(layers):
            if next_value[index] <= np.iinfo(layer.dtype).max and not np.any(layer[box][crop]):
                break
        else:
            layers.append(np.zeros(geometry.shape_kji, dtype=np.uint8))
            next_value.append(1)
            index = len(layers) - 1
        layers[index][box][crop] = next_value[index]
        segments.append(Segment(name, name, index, next_value[index]))
        next_value[index] += 1
    if empty:
        warnings.append(f"{len(empty)} empty mask(s) in '{folder.name}' left out: {', '.join(empty[:20])}"
                        f"{' ...' if len(empty) > 20 else ''}.")
    if not layers:
        layers = [np.zeros(geometry.shape_kji, dtype=np.uint8)]
    return LabelVolume(layers, geometry, segments, str(folder), warnings)


def is_mask_folder(path: str | os.PathLike) -> bool:
    """True for a folder that holds masks (files or DICOM series folders), not the slices of one series."""
    folder = Path(path)
    return folder.is_dir() and mask_sources(folder) is not None
