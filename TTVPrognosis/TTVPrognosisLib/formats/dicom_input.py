"""Which DICOM reader a path needs: an image or label series (a folder, or one of its files), a SEG or an
RTSTRUCT (a file, or a folder holding one beside its CT).

``series`` is the user's choice of series (``--series UID``, repeatable) for folders holding several; a folder
holding one series ignores it, so one option can serve the CT folder and the segmentation folder alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..formats.dicom_series import (
    RTSTRUCT_STORAGE,
    SEG_STORAGE,
    DicomSeries,
    choose_series,
    read_header,
    read_series,
    read_series_geometry,
    scan_folder,
)
from ..formats.segments import LabelVolume
from ..geometry import Geometry

DICOM_MAGIC_OFFSET = 128


def is_dicom_file(path: Path) -> bool:
    """A ``.dcm`` file, or any file with the DICOM preamble ('DICM' at byte 128)."""
    if not path.is_file():
        return False
    if path.name.lower().endswith((".dcm", ".dicom")):
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(DICOM_MAGIC_OFFSET)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _file_header(path: Path):
    header = read_header(path)
    if header is None:
        raise InputError(f"'{path}' is not a DICOM file that can be measured (no series, or not DICOM).")
    return header


def _series_of_file(path: Path) -> tuple[Path, list[str]]:
    """A slice file stands for its series in its folder."""
    return path.parent, [_file_header(path).series_uid]


def _one_file(found: DicomSeries, folder: Path) -> Path:
    if len(found.files) != 1:
        names = ", ".join(header.path.name for header in found.files[:5])
        raise InputError(f"Series {found.uid} in '{folder}' holds {len(found.files)} segmentation files ({names}); "
                         f"give the file to read.")
    return found.files[0].path


def _read_object(path: Path, sop_class: str, reference: Path | None, series: Sequence[str]) -> LabelVolume:
    if sop_class == SEG_STORAGE:
        from ..formats.dicom_seg import read_dicom_seg

        return read_dicom_seg(path, reference, series)
    from ..formats.rtstruct import read_rtstruct

    return read_rtstruct(path, reference, series)


def read_dicom_segmentation(path: Path, reference: Path | None, series: Sequence[str], label_reader
                            ) -> LabelVolume:
    """A SEG or RTSTRUCT (file, or the one in a folder), else the folder's label series via ``label_reader``
    (called with the folder and the series UIDs to choose from)."""
    if path.is_file():
        header = _file_header(path)
        if header.sop_class_uid in (SEG_STORAGE, RTSTRUCT_STORAGE):
            return _read_object(path, header.sop_class_uid, reference, series)
        return label_reader(*_series_of_file(path))
    found = scan_folder(path)
    wanted = {uid.strip() for uid in series}
    objects = [item for item in found if item.first.sop_class_uid in (SEG_STORAGE, RTSTRUCT_STORAGE)]
    chosen = [item for item in found if item.uid in wanted]
    if len(chosen) == 1 and chosen[0].first.sop_class_uid not in (SEG_STORAGE, RTSTRUCT_STORAGE):
        return label_reader(path, [chosen[0].uid])
    if chosen or objects:
        picked = choose_series(path, chosen or objects, series, "segmentations (SEG or RTSTRUCT)")
        return _read_object(_one_file(picked, path), picked.first.sop_class_uid, reference, series)
    return label_reader(path, list(series))


def read_dicom_image(path: Path, series: Sequence[str]) -> tuple[np.ndarray, Geometry, list[str]]:
    """Voxels, geometry and warnings of an image series (a folder, or one of its files)."""
    folder, wanted = _series_of_file(path) if path.is_file() else (path, list(series))
    return read_series(folder, wanted)


def read_dicom_geometry(path: Path, series: Sequence[str]) -> Geometry:
    """Grid of an image series from its headers alone."""
    folder, wanted = _series_of_file(path) if path.is_file() else (path, list(series))
    return read_series_geometry(folder, wanted).geometry
