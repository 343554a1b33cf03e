"""DICOM RTSTRUCT as a segmentation: contours rasterised on the CT they were drawn on.

An RTSTRUCT holds only contours (LPS polygons), so it needs its CT: the series given by the user, or, when
none is given, the series in the RTSTRUCT's own folder whose UID the RTSTRUCT references. The CT must have
the frame of reference (``FrameOfReferenceUID``) the RTSTRUCT names; another one is refused (wrong CT); a
series of the same frame other than the referenced one is used with a warning. Only the CT's headers are
read (its slices are checked like any series: :mod:`.dicom_series`).

Method: each closed planar contour is mapped to the CT's continuous voxel indices and must lie on one slice
plane, within a tenth of the slice spacing (matched to the nearest slice; a contour between slices or
outside the CT is refused). On that slice it is filled by scan lines at voxel centres with the even-odd
rule (a centre exactly on an edge counts on the left and lower edges, not the right and upper ones), and
all contours of one ROI on one slice are combined by the even-odd rule too, so an inner contour is a hole
(as Slicer's RT import does). A voxel therefore belongs to an ROI when its centre lies inside the polygon.
Open contours and points cannot enclose a volume and are left out with a warning. Each ROI becomes one
segment named by ``ROIName`` with its ``ROINumber`` as ID and label value; roles come from the RT ROI
Interpreted Type (:func:`.dicom_codes.role_from_rt_roi`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..formats.dicom_codes import describe_code, role_from_property_codes, role_from_rt_roi
from ..formats.dicom_seg import pack_segments
from ..formats.dicom_series import (
    RTSTRUCT_STORAGE,
    DicomSeries,
    choose_series,
    require_complete,
    require_pydicom,
    scan_folder,
    series_layout,
)
from ..formats.segments import ROLE_TAG, LabelVolume, Segment
from ..geometry import Geometry

PLANE_TOLERANCE_FRACTION = 0.1  # a contour may lie this part of the slice spacing off the nearest slice
INTERPRETED_TYPE_TAG = "DICOM.RTROIInterpretedType"


def fill_polygon(points_ij: np.ndarray, shape_ji: tuple[int, int]) -> np.ndarray:
    """Voxel centres (integer i, j) inside a closed polygon by the even-odd rule, as a [j, i] mask.

    Scan line per row j: edges crossing it are taken half-open (lower end in, upper end out), so a vertex on
    the row is counted once; between each pair of crossings a <= i < b the centres are inside.
    """
    mask = np.zeros(shape_ji, dtype=bool)
    x, y = points_ij[:, 0], points_ij[:, 1]
    x_next, y_next = np.roll(x, -1), np.roll(y, -1)
    first_row = max(int(np.ceil(y.min())), 0)
    last_row = min(int(np.floor(y.max())), shape_ji[0] - 1)
    for row in range(first_row, last_row + 1):
        crossing = ((y <= row) & (y_next > row)) | ((y_next <= row) & (y > row))
        if not np.any(crossing):
            continue
        x0, y0, x1, y1 = x[crossing], y[crossing], x_next[crossing], y_next[crossing]
        crossings = np.sort(x0 + (row - y0) * (x1 - x0) / (y1 - y0))
        for start, end in zip(crossings[0::2], crossings[1::2]):
            low, high = max(int(np.ceil(start)), 0), min(int(np.ceil(end)), shape_ji[1])
            if high > low:
                mask[row, low:high] = True
    return mask


def _referenced(structure) -> tuple[set[str], dict[str, set[str]]]:
    """Frame-of-reference UIDs the RTSTRUCT names, and per referenced series the image UIDs it lists."""
    frames, series = set(), {}
    for frame in structure.get("ReferencedFrameOfReferenceSequence") or []:
        frames.add(str(frame.get("FrameOfReferenceUID", "")))
        for study in frame.get("RTReferencedStudySequence") or []:
            for item in study.get("RTReferencedSeriesSequence") or []:
                images = series.setdefault(str(item.get("SeriesInstanceUID", "")), set())
                images.update(str(image.get("ReferencedSOPInstanceUID", ""))
                              for image in item.get("ContourImageSequence") or [])
    for roi in structure.get("StructureSetROISequence") or []:
        frames.add(str(roi.get("ReferencedFrameOfReferenceUID", "")))
    series.pop("", None)
    return frames - {""}, {uid: images - {""} for uid, images in series.items()}


def _reference_series(path: Path, reference: Path | None, frames: set[str], series_uids: dict[str, set[str]],
                      wanted: Sequence[str]) -> tuple[DicomSeries, Path, list[str]]:
    """The CT series to rasterise on, checked against the RTSTRUCT's references."""
    folder = path.parent if reference is None else (reference if reference.is_dir() else reference.parent)
    images = [series for series in scan_folder(folder) if series.first.is_image]
    if reference is None:
        images = [series for series in images if series.uid in series_uids]
        if not images:
            raise InputError(f"'{path.name}' is an RTSTRUCT: it holds contours only, and its CT series is not in its "
                             f"folder. Give the CT series it was drawn on (measure: --image FOLDER; batch: the "
                             f"image column).")
    referenced = [series for series in images if series.uid in series_uids]
    chosen = referenced[0] if len(referenced) == 1 else choose_series(folder, images, wanted, "image series")
    warnings = []
    if frames and chosen.first.frame_of_reference_uid not in frames:
        theirs = chosen.first.frame_of_reference_uid or "none"
        raise InputError(f"The CT series {chosen.describe()} in '{folder}' is not the scan the RTSTRUCT "
                         f"'{path.name}' was drawn on: its frame of reference ({theirs}) is not the RTSTRUCT's "
                         f"({', '.join(sorted(frames))}). Give the right CT.")
    if series_uids and chosen.uid not in series_uids:
        warnings.append(f"The RTSTRUCT '{path.name}' was drawn on series {', '.join(sorted(series_uids))}; its "
                        f"contours are rasterised on series {chosen.uid} of the same frame of reference.")
    missing = series_uids.get(chosen.uid, set()) - {header.sop_instance_uid for header in chosen.files}
    if missing:
        raise InputError(f"The CT series {chosen.uid} in '{folder}' lacks {len(missing)} of the slices the RTSTRUCT "
                         f"'{path.name}' refers to: slices were lost. Export the complete series again.")
    return chosen, folder, warnings


def _contour_points(contour, roi_name: str, path: Path) -> np.ndarray:
    try:
        values = np.array([float(value) for value in contour.ContourData], dtype=float)
    except (AttributeError, TypeError, ValueError) as error:
        raise InputError(f"A contour of ROI '{roi_name}' in '{path}' has no valid ContourData; the file is "
                         f"damaged.") from error
    if values.size == 0 or values.size % 3 or not np.all(np.isfinite(values)):
        raise InputError(f"A contour of ROI '{roi_name}' in '{path}' has {values.size} coordinates, not a whole "
                         f"number of finite points; the file is damaged.")
    return values.reshape(-1, 3)


def _rasterise(contours, roi_name: str, geometry: Geometry, path: Path, warnings: list[str]) -> np.ndarray:
    """Even-odd union of an ROI's closed contours, slice by slice, on ``geometry``."""
    mask = np.zeros(geometry.shape_kji, dtype=bool)
    lps_to_ijk = np.linalg.inv(geometry.ijk_to_lps)
    skipped = 0
    for contour in contours:
        kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).strip().upper()
        if kind != "CLOSED_PLANAR":
            skipped += 1
            continue
        points = _contour_points(contour, roi_name, path)
        ijk = points @ lps_to_ijk[:3, :3].T + lps_to_ijk[:3, 3]
        plane = int(np.round(ijk[:, 2].mean()))
        if np.abs(ijk[:, 2] - plane).max() > PLANE_TOLERANCE_FRACTION:
            raise InputError(f"A contour of ROI '{roi_name}' in '{path}' (at z = {points[0, 2]:.6g} mm) does not lie "
                             f"on a slice of the CT: it is between slices or tilted. The CT is probably not the one "
                             f"it was drawn on.")
        if not 0 <= plane < geometry.shape_kji[0]:
            raise InputError(f"A contour of ROI '{roi_name}' in '{path}' (at z = {points[0, 2]:.6g} mm) lies "
                             f"outside the CT's slices. The CT is probably not the one it was drawn on.")
        mask[plane] ^= fill_polygon(ijk[:, :2], geometry.shape_kji[1:])
    if skipped:
        warnings.append(f"ROI '{roi_name}': {skipped} open contour(s) or point(s) enclose no volume and were "
                        f"left out.")
    return mask


def _roi_segments(structure, path: Path) -> tuple[list[Segment], dict[int, list]]:
    if "ROIContourSequence" not in structure or "StructureSetROISequence" not in structure:
        raise InputError(f"The RTSTRUCT '{path}' has no ROI or contour list; it is damaged or incomplete.")
    contours = {int(item.ReferencedROINumber): list(item.get("ContourSequence") or [])
                for item in structure.ROIContourSequence}
    observations = {int(item.ReferencedROINumber): item for item in structure.get("RTROIObservationsSequence") or []
                    if "ReferencedROINumber" in item}
    segments = []
    for roi in structure.get("StructureSetROISequence") or []:
        number = int(roi.ROINumber)
        name = str(roi.get("ROIName", "")).strip() or f"ROI {number}"
        observation = observations.get(number)
        tags = {}
        role = None
        if observation is not None:
            interpreted = str(observation.get("RTROIInterpretedType", "") or "").strip()
            if interpreted:
                tags[INTERPRETED_TYPE_TAG] = interpreted
            codes = observation.get("RTROIIdentificationCodeSequence")
            if codes:
                tags["DICOM.RTROIIdentificationCode"] = describe_code(codes[0])
                role = role_from_property_codes(None, codes[0])
            role = role or role_from_rt_roi(interpreted, name)
        if role:
            tags[ROLE_TAG] = role
        if number <= 0:
            raise InputError(f"ROI '{name}' in '{path}' has number {number}; ROI numbers are above 0.")
        segments.append(Segment(segment_id=str(number), name=name, layer=0, label_value=number, tags=tags))
    if not segments:
        raise InputError(f"The RTSTRUCT '{path}' holds no ROIs.")
    return segments, contours


def read_rtstruct(path: str | Path, reference: str | Path | None = None, wanted: Sequence[str] = ()) -> LabelVolume:
    """An RTSTRUCT rasterised on its CT series (see the module docstring for the method and checks)."""
    pydicom = require_pydicom()

    path = Path(path)
    try:
        structure = pydicom.dcmread(str(path))
    except Exception as error:
        raise InputError(f"The DICOM file '{path}' is damaged ({str(error).strip() or type(error).__name__}). "
                         f"Export it again.") from error
    if str(structure.get("SOPClassUID", "")) != RTSTRUCT_STORAGE:
        raise InputError(f"'{path}' is not an RTSTRUCT.")
    require_complete(structure, path, "RTSTRUCT")
    try:
        return _read_structure(path, structure, reference, wanted)
    except InputError:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:  # required attributes missing
        raise InputError(f"The RTSTRUCT '{path}' is damaged or incomplete ({error}). Export it again.") from error


def _read_structure(path: Path, structure, reference: str | Path | None, wanted: Sequence[str]) -> LabelVolume:
    frames, series_uids = _referenced(structure)
    reference_path = Path(reference) if reference is not None else None
    series, folder, warnings = _reference_series(path, reference_path, frames, series_uids, wanted)
    layout = series_layout(series, folder)
    warnings.extend(layout.warnings)
    segments, contours = _roi_segments(structure, path)
    masks = [_rasterise(contours.get(segment.label_value, []), segment.name, layout.geometry, path, warnings)
             for segment in segments]
    layers = pack_segments(masks, segments)
    return LabelVolume(layers, layout.geometry, segments, str(path), warnings)
