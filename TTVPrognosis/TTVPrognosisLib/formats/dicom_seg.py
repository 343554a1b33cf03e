"""DICOM Segmentation objects (SEG, binary and fractional) as segmentations, read with pydicom.

Each frame of a SEG is one plane of one segment. Frames are placed by their own plane positions
(``PlanePositionSequence``, ``PlaneOrientationSequence``, ``PixelMeasuresSequence``, per frame or shared) on
the SEG's own grid: the planes it holds, spaced by ``SpacingBetweenSlices`` (inferred from the closest frames,
with a warning, when the SEG does not state it; refused when that disagrees with its ``SliceThickness``, as
empty frames may be left out); planes without any frame are empty, as the standard lets writers omit empty
frames. Given the DICOM CT it was made on, the frames are placed on the CT's slices instead (same
orientation, pixel grid, and each frame on a slice); that CT must share its frame of reference and hold
every image the SEG refers to (else slices were lost). A SEG is refused when its frame count, per-frame
descriptions and pixel data disagree (frames lost or cut off), when a frame lies between the grid's planes or
off its in-plane origin, or when a segment has two frames for one plane. A fractional SEG is thresholded at
one half: a voxel belongs to a segment when its value is at least half of ``MaximumFractionalValue``
(probability or occupancy >= 0.5).

Segments keep their ``SegmentLabel`` as name and their number as ID and label value; each goes into the
first label layer where it overlaps nothing, so overlapping segments stay whole in separate layers. Roles
come from the coded Segmented Property Category and Type (:mod:`.dicom_codes`). A SEG this tool wrote also
says, in Segment Description, ``TTVPrognosis role=lesion; verified=yes``: the Verified state is read back
from it (so a round trip through DICOM loses nothing), and the role when the codes do not decide it. When
the codes decide another role than the description, the codes win (they are what other tools show and edit),
the description's Verified state is dropped and a warning says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..formats.dicom_codes import describe_code, role_from_property_codes
from ..formats.dicom_series import require_complete, require_pydicom
from ..formats.roles import ROLE_LESION, ROLE_LIVER, ROLE_OTHER
from ..formats.segments import ROLE_TAG, VERIFIED_TAG, LabelVolume, Segment
from ..geometry import Geometry

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
PLANE_TOLERANCE_FRACTION = 0.05  # a frame may sit this part of the slice spacing off a grid plane
IN_PLANE_TOLERANCE_MM = 0.01
PROPERTY_TYPE_TAG = "DICOM.SegmentedPropertyType"
AMBIGUOUS = "[ambiguous]"  # marks a grid the SEG alone cannot settle (refused unless its CT settles it)
PROPERTY_CATEGORY_TAG = "DICOM.SegmentedPropertyCategory"
DESCRIPTION_PREFIX = "TTVPrognosis"  # Segment Description of the segments this tool writes (export-seg)
DESCRIPTION_ROLES = (ROLE_LESION, ROLE_LIVER, ROLE_OTHER)
VERIFIED_WORDS = {"yes": True, "no": False}


def segment_description_text(role: str, verified: bool) -> str:
    """What export-seg writes into Segment Description: the role and the Verified state, parseable and readable."""
    return f"{DESCRIPTION_PREFIX} role={role}; verified={'yes' if verified else 'no'}"


def parse_segment_description(text: str) -> tuple[str | None, bool | None]:
    """(role, verified) from a Segment Description written by :func:`segment_description_text`; (None, None) for
    any other text (other tools' free text), and None for a field that is missing or has an unknown value."""
    text = (text or "").strip()
    if not text.lower().startswith(DESCRIPTION_PREFIX.lower() + " "):
        return None, None
    fields = {}
    for part in text[len(DESCRIPTION_PREFIX):].split(";"):
        key, _, value = part.partition("=")
        fields[key.strip().lower()] = value.strip().lower()
    role = fields.get("role")
    return (role if role in DESCRIPTION_ROLES else None), VERIFIED_WORDS.get(fields.get("verified", ""))


def pack_segments(masks: Sequence[np.ndarray], segments: Sequence[Segment]) -> list[np.ndarray]:
    """Label layers holding each mask at its segment's label value, a mask in the first layer it does not
    overlap (so overlapping segments are kept whole); sets each segment's ``layer``."""
    largest = max((segment.label_value for segment in segments), default=1)
    dtype = np.uint8 if largest < 256 else (np.uint16 if largest < 65536 else np.uint32)
    layers: list[np.ndarray] = []
    for mask, segment in zip(masks, segments):
        for index, layer in enumerate(layers):
            if not np.any(layer[mask]):
                layer[mask] = segment.label_value
                segment.layer = index
                break
        else:
            layer = np.zeros(mask.shape, dtype=dtype)
            layer[mask] = segment.label_value
            segment.layer = len(layers)
            layers.append(layer)
    return layers or [np.zeros(masks[0].shape if masks else (1, 1, 1), dtype=dtype)]


def _item(dataset, keyword: str):
    sequence = dataset.get(keyword)
    return sequence[0] if sequence else None


def _functional(frame, shared, group: str, keyword: str):
    """An attribute of a functional group, from the frame's own groups else the shared ones."""
    for source in (frame, shared):
        item = _item(source, group) if source is not None else None
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _floats(value, count: int, what: str, path: Path, frame: int) -> np.ndarray:
    try:
        numbers = np.array([float(item) for item in value], dtype=float)
    except (TypeError, ValueError):
        numbers = np.array([])
    if numbers.shape != (count,) or not np.all(np.isfinite(numbers)):
        raise InputError(f"Frame {frame + 1} of the DICOM SEG '{path}' has no valid {what}, so it cannot be placed. "
                         f"The file may be damaged; export it again.")
    return numbers


def _read_dataset(path: Path):
    pydicom = require_pydicom()

    try:
        dataset = pydicom.dcmread(str(path))
    except Exception as error:
        raise InputError(f"The DICOM file '{path}' is damaged ({str(error).strip() or type(error).__name__}). "
                         f"Export it again.") from error
    require_complete(dataset, path, "DICOM file")
    return dataset


def _frames(dataset, path: Path) -> np.ndarray:
    """Decoded frames (frames, rows, columns), after checking their count against the header."""
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != count:
        raise InputError(f"The DICOM SEG '{path}' says it has {count} frames but describes {len(per_frame)}: "
                         f"frames were lost or the file is damaged. Export it again.")
    if "PixelData" not in dataset or not dataset.PixelData:
        raise InputError(f"The DICOM SEG '{path}' has no pixel data; the file is damaged or incomplete.")
    if not dataset.file_meta.TransferSyntaxUID.is_compressed:
        needed = (int(dataset.Rows) * int(dataset.Columns) * count * int(dataset.BitsAllocated) + 7) // 8
        if len(dataset.PixelData) < needed:
            raise InputError(f"The DICOM SEG '{path}' is truncated: its pixel data holds {len(dataset.PixelData)} "
                             f"bytes, {needed} are needed for {count} frames. Export it again.")
    try:
        pixels = dataset.pixel_array
    except Exception as error:
        raise InputError(f"The frames of the DICOM SEG '{path}' could not be decoded ({error}); the file may be "
                         f"damaged, or a decoder for its compression is missing.") from error
    return pixels.reshape(count, int(dataset.Rows), int(dataset.Columns))


def _grid(dataset, path: Path) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """IJK-to-LPS matrix of the SEG's own grid, each frame's plane index, warnings, and frame positions."""
    shared = _item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.PerFrameFunctionalGroupsSequence
    orientations, positions = [], []
    spacing = thickness = between = None
    for index, frame in enumerate(per_frame):
        orientations.append(_floats(_functional(frame, shared, "PlaneOrientationSequence", "ImageOrientationPatient"),
                                    6, "ImageOrientationPatient", path, index))
        positions.append(_floats(_functional(frame, shared, "PlanePositionSequence", "ImagePositionPatient"),
                                 3, "ImagePositionPatient", path, index))
        pixel_spacing = _floats(_functional(frame, shared, "PixelMeasuresSequence", "PixelSpacing"), 2,
                                "PixelSpacing", path, index)
        if spacing is not None and not np.allclose(pixel_spacing, spacing, rtol=1e-4):
            raise InputError(f"The frames of the DICOM SEG '{path}' have different pixel spacings; not supported.")
        spacing = pixel_spacing
        between = between or _positive(_functional(frame, shared, "PixelMeasuresSequence", "SpacingBetweenSlices"))
        thickness = thickness or _positive(_functional(frame, shared, "PixelMeasuresSequence", "SliceThickness"))
    orientation = orientations[0]
    if any(not np.allclose(item, orientation, atol=1e-4) for item in orientations):
        raise InputError(f"The frames of the DICOM SEG '{path}' have different orientations; a volume needs one.")
    if np.any(spacing <= 0):
        raise InputError(f"The DICOM SEG '{path}' has PixelSpacing {list(spacing)}; spacings must be above 0.")
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    positions = np.array(positions)
    offsets = positions @ normal
    in_plane = positions - np.outer(offsets, normal)
    if np.abs(in_plane - in_plane[0]).max() > IN_PLANE_TOLERANCE_MM:
        raise InputError(f"The frames of the DICOM SEG '{path}' do not share one in-plane origin (tiled or "
                         f"shifted frames); they cannot be stacked into a volume.")
    warnings = []
    planes = np.unique(np.round(offsets, 4))
    if between is None:
        gaps = np.diff(planes)
        if len(gaps):
            between = float(gaps.min())
            warnings.append(f"The DICOM SEG '{path.name}' does not state its spacing between slices; "
                            f"{between:.4g} mm was taken from the closest frames.")
            if thickness is not None and abs(thickness - between) > 0.01 * thickness:
                warnings.append(f"{AMBIGUOUS} The DICOM SEG '{path}' states no spacing between slices, and its "
                                f"closest frames ({between:.4g} mm apart) disagree with its slice thickness "
                                f"({thickness:.4g} mm): empty slices may have been left out. Give the CT series it "
                                f"was made on (--image) so that its frames can be placed on the CT's slices.")
        elif thickness is not None:
            between = thickness
        else:
            raise InputError(f"The DICOM SEG '{path}' has frames on one plane only and states no slice spacing or "
                             f"thickness, so its voxel volume is unknown.")
    steps = (offsets - offsets.min()) / between
    off_grid = np.abs(steps - np.round(steps)) > PLANE_TOLERANCE_FRACTION
    if np.any(off_grid):
        bad = int(np.argmax(off_grid))
        raise InputError(f"Frame {bad + 1} of the DICOM SEG '{path}' lies between the planes of its grid "
                         f"({between:.4g} mm apart); the frames do not form one volume. Export it again.")
    matrix = np.eye(4)
    matrix[:3, 0] = row * spacing[1]
    matrix[:3, 1] = column * spacing[0]
    matrix[:3, 2] = normal * between
    matrix[:3, 3] = positions[int(np.argmin(offsets))]
    return matrix, np.round(steps).astype(int), warnings, positions


def _positive(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def _segment_of_frame(frame, shared, path: Path, index: int) -> int:
    number = _functional(frame, shared, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
    if number is None:
        raise InputError(f"Frame {index + 1} of the DICOM SEG '{path}' names no segment; the file is damaged.")
    return int(number)


def _segments(dataset, path: Path, warnings: list[str]) -> list[Segment]:
    segments = []
    for item in dataset.get("SegmentSequence") or []:
        number = int(item.SegmentNumber)
        category, kind = _item(item, "SegmentedPropertyCategoryCodeSequence"), \
            _item(item, "SegmentedPropertyTypeCodeSequence")
        tags = {}
        if kind is not None:
            tags[PROPERTY_TYPE_TAG] = describe_code(kind)
        if category is not None:
            tags[PROPERTY_CATEGORY_TAG] = describe_code(category)
        label = str(item.get("SegmentLabel", "")).strip() or f"Segment {number}"
        coded = role_from_property_codes(category, kind)
        described, verified = parse_segment_description(str(item.get("SegmentDescription", "") or ""))
        if coded and described and coded != described:
            warnings.append(f"Segment '{label}' of '{path.name}' is coded as {coded} but its description says "
                            f"{described} (edited in another program?): it is taken as {coded}, as coded, and not "
                            f"as verified. Say otherwise with --lesion-segment, --liver-segment or --exclude-segment.")
            verified = None
        role = coded or described
        if role:
            tags[ROLE_TAG] = role
        if verified is not None:
            tags[VERIFIED_TAG] = "1" if verified else "0"
        segments.append(Segment(segment_id=str(number), name=label, layer=0, label_value=number, tags=tags))
    if not segments:
        raise InputError(f"The DICOM SEG '{path}' describes no segments; the file is damaged.")
    if len({segment.label_value for segment in segments}) != len(segments):
        raise InputError(f"The DICOM SEG '{path}' has two segments with one number; the file is damaged.")
    return segments


def read_dicom_seg(path: str | Path, reference: Path | None = None, wanted: Sequence[str] = ()) -> LabelVolume:
    """A DICOM SEG file as a :class:`LabelVolume` on its own grid, or on its CT's grid when ``reference`` is the
    DICOM CT series (folder or file) it was made on (see the module docstring)."""
    path = Path(path)
    try:
        return _read_seg(path, _read_dataset(path), reference, wanted)
    except InputError:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:  # required attributes missing
        raise InputError(f"The DICOM SEG '{path}' is damaged or incomplete ({error}). Export it again.") from error


def _reference_grid(path: Path, dataset, reference: Path, wanted: Sequence[str]) -> Geometry | None:
    """The grid of the DICOM CT the SEG refers to, checked: same frame of reference, every referenced image
    there. None when the reference is not DICOM (the caller's overlap check then applies)."""
    from ..formats.dicom_input import is_dicom_file
    from ..formats.dicom_series import choose_series, scan_folder, series_layout

    if not (reference.is_dir() or is_dicom_file(reference)):
        return None
    folder = reference if reference.is_dir() else reference.parent
    images = [series for series in scan_folder(folder) if series.first.is_image]
    referenced = {str(item.get("SeriesInstanceUID", "")): {str(image.get("ReferencedSOPInstanceUID", ""))
                                                           for image in item.get("ReferencedInstanceSequence") or []}
                  for item in dataset.get("ReferencedSeriesSequence") or []}
    matching = [series for series in images if series.uid in referenced]
    chosen = matching[0] if len(matching) == 1 else choose_series(folder, images, wanted, "image series")
    frame = str(dataset.get("FrameOfReferenceUID", ""))
    if frame and chosen.first.frame_of_reference_uid and frame != chosen.first.frame_of_reference_uid:
        raise InputError(f"The CT series {chosen.describe()} in '{folder}' is not the scan the DICOM SEG "
                         f"'{path.name}' was made on: its frame of reference differs. Give the right CT.")
    missing = referenced.get(chosen.uid, set()) - {""} - {header.sop_instance_uid for header in chosen.files}
    if missing:
        raise InputError(f"The CT series {chosen.uid} in '{folder}' lacks {len(missing)} of the slices the DICOM SEG "
                         f"'{path.name}' refers to: slices were lost. Export the complete series again.")
    return series_layout(chosen, folder).geometry


def _planes_on(reference: Geometry, matrix: np.ndarray, positions: np.ndarray, frame_shape) -> np.ndarray | None:
    """Each frame's slice index on the reference grid, or None when the frames are not its slices."""
    if tuple(frame_shape) != reference.shape_kji[1:] or \
            not np.allclose(reference.ijk_to_lps[:3, :2], matrix[:3, :2], atol=1e-4):
        return None
    ijk = (positions - reference.ijk_to_lps[:3, 3]) @ np.linalg.inv(reference.ijk_to_lps[:3, :3]).T
    planes = np.round(ijk[:, 2])
    on_slices = np.abs(ijk[:, :2]).max() < 0.01 and np.abs(ijk[:, 2] - planes).max() < PLANE_TOLERANCE_FRACTION
    if not on_slices or planes.min() < 0 or planes.max() >= reference.shape_kji[0]:
        return None
    return planes.astype(int)


def _read_seg(path: Path, dataset, reference: Path | None = None, wanted: Sequence[str] = ()) -> LabelVolume:
    if str(dataset.get("SOPClassUID", "")) != SEG_STORAGE:
        raise InputError(f"'{path}' is not a DICOM Segmentation (SOP class {dataset.get('SOPClassUID', 'missing')}).")
    description_warnings: list[str] = []
    segments = _segments(dataset, path, description_warnings)
    frames = _frames(dataset, path)
    matrix, plane_of_frame, warnings, positions = _grid(dataset, path)
    shape = (int(plane_of_frame.max()) + 1, frames.shape[1], frames.shape[2])
    reference_grid = _reference_grid(path, dataset, reference, wanted) if reference is not None else None
    planes = _planes_on(reference_grid, matrix, positions, frames.shape[1:]) if reference_grid is not None else None
    if planes is not None:  # on the CT's own grid: its slice spacing, nothing inferred
        matrix, plane_of_frame, shape = reference_grid.ijk_to_lps, planes, reference_grid.shape_kji
        warnings = [warning for warning in warnings if "spacing between slices" not in warning]
    ambiguous = [warning for warning in warnings if warning.startswith(AMBIGUOUS)]
    if ambiguous:
        raise InputError(ambiguous[0][len(AMBIGUOUS):].strip())
    fractional = str(dataset.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    if fractional:
        maximum = _positive(dataset.get("MaximumFractionalValue"))
        if maximum is None:
            raise InputError(f"The fractional DICOM SEG '{path}' states no MaximumFractionalValue.")
        inside = frames >= maximum / 2.0
        warnings.append(f"'{path.name}' is a fractional SEG: a voxel is counted in a segment when its value is at "
                        f"least half the maximum (probability or occupancy >= 0.5).")
    else:
        if frames.size and frames.max() > 1:
            raise InputError(f"The binary DICOM SEG '{path}' holds values above 1; the file is damaged.")
        inside = frames.astype(bool)
    by_number = {segment.label_value: index for index, segment in enumerate(segments)}
    masks = [np.zeros(shape, dtype=bool) for _ in segments]
    seen = set()
    shared = _item(dataset, "SharedFunctionalGroupsSequence")
    for index, frame in enumerate(dataset.PerFrameFunctionalGroupsSequence):
        number = _segment_of_frame(frame, shared, path, index)
        if number not in by_number:
            raise InputError(f"Frame {index + 1} of the DICOM SEG '{path}' refers to segment {number}, which the "
                             f"file does not describe; the file is damaged.")
        plane = int(plane_of_frame[index])
        if (number, plane) in seen:
            raise InputError(f"The DICOM SEG '{path}' has two frames of segment {number} on one plane; the file "
                             f"is damaged or holds several volumes.")
        seen.add((number, plane))
        masks[by_number[number]][plane] = inside[index]
    layers = pack_segments(masks, segments)
    return LabelVolume(layers, Geometry.from_lps(matrix, shape), segments, str(path), description_warnings + warnings)
