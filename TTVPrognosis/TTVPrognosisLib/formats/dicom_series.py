"""DICOM image series from a folder, as PACS exports them: checked slice by slice before any voxel is read.

ITK's series reader reports a lost or uneven slice only as a note on stderr and still returns a volume
whose spacing is wrong somewhere. Here the headers are read first (pydicom, pixel data deferred), the
series is chosen explicitly when a folder holds several, and the slices are ordered by their position
along the slice normal (``ImageOrientationPatient`` row x column). A series is refused, with the files and
positions named, when a slice is lost (a gap of about twice the usual step), duplicated (two slices at one
position), empty or truncated (pixel data missing or shorter than ``Rows x Columns x BitsAllocated``), when
the spacing is uneven, or when slices differ in orientation, size or pixel spacing. Only then are the
pixels read (SimpleITK on the files in that order, so ``RescaleSlope``/``RescaleIntercept`` and compressed
transfer syntaxes are handled by GDCM). The geometry is built here from ``ImagePositionPatient``,
``ImageOrientationPatient`` and ``PixelSpacing`` (LPS in DICOM, converted to RAS by :class:`Geometry`);
slices stepping off the normal (gantry tilt) give a sheared grid whose voxel volume stays exact.

pydicom is imported inside the functions, so reading other formats never needs it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import Geometry

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
DICOMDIR_STORAGE = "1.2.840.10008.1.3.10"
PIXEL_DATA = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
SEQUENCE_DELIMITER_BIG_ENDIAN = b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
DIRECTION_TOLERANCE = 1e-4  # cosines: slices of one series share orientation to this
DUPLICATE_FRACTION = 0.05  # two slices closer than this part of the usual step are at one position
STEP_TOLERANCE_MM = 0.01
STEP_TOLERANCE_FRACTION = 0.01  # a step may differ from the usual one by this (or 0.01 mm), no more
TILT_WARNING_RADIANS = 1e-3


@dataclass
class DicomFile:
    """What the header of one DICOM file says (pixel data not read)."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    modality: str
    description: str
    series_number: str
    frame_of_reference_uid: str
    rows: int = 0
    columns: int = 0
    position: np.ndarray | None = None
    orientation: np.ndarray | None = None
    pixel_spacing: np.ndarray | None = None
    frames: int = 1
    pixel_problem: str = ""  # why the pixel data cannot be right, if it cannot
    spacing_between_slices: float | None = None
    slice_thickness: float | None = None
    spacing_source: str = "PixelSpacing"
    rescale: tuple[str, str] = ("", "")  # RescaleSlope, RescaleIntercept as written

    @property
    def is_image(self) -> bool:
        """Pixels in slices (not a SEG, an RTSTRUCT, a report or a presentation state)."""
        return self.sop_class_uid not in (SEG_STORAGE, RTSTRUCT_STORAGE) and self.rows > 0


@dataclass
class DicomSeries:
    """Files of one SeriesInstanceUID in a folder."""

    uid: str
    files: list[DicomFile] = field(default_factory=list)

    @property
    def first(self) -> DicomFile:
        return self.files[0]

    def describe(self) -> str:
        first = self.first
        kind = {SEG_STORAGE: "DICOM SEG", RTSTRUCT_STORAGE: "RTSTRUCT"}.get(first.sop_class_uid, first.modality)
        count = f"{len(self.files)} slice{'s' if len(self.files) != 1 else ''}" if first.is_image \
            else f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}"
        number = f"series {first.series_number}, " if first.series_number else ""
        title = f"'{first.description}'" if first.description else "no description"
        return f"{self.uid} ({number}{title}, {kind or 'unknown modality'}, {count})"


def _numbers(dataset, keyword: str, count: int) -> np.ndarray | None:
    value = dataset.get(keyword)
    try:
        numbers = np.array([float(item) for item in value], dtype=float) if value is not None else None
    except (TypeError, ValueError):
        return None
    if numbers is None or numbers.shape != (count,) or not np.all(np.isfinite(numbers)):
        return None
    return numbers


def _optional_float(dataset, keyword: str) -> float | None:
    try:
        value = float(dataset.get(keyword)) if dataset.get(keyword) not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and np.isfinite(value) and value > 0 else None


def _pixel_problem(dataset, path: Path) -> str:
    """Missing, empty or short pixel data, judged from the header and the file size (nothing decoded)."""
    try:
        element = dataset.get_item(PIXEL_DATA, keep_deferred=True)
    except TypeError:  # pydicom < 3 (older Slicer) has no keep_deferred and reads the value
        element = dataset.get_item(PIXEL_DATA)
    if element is None:
        return "has no pixel data (an empty slice)"
    value = getattr(element, "value", None)
    length = getattr(element, "length", None)
    if length is None or (value is not None and length != UNDEFINED_LENGTH):
        length = len(value) if value is not None else 0
    if length == 0:
        return "has empty pixel data"
    if length == UNDEFINED_LENGTH:  # compressed (encapsulated) frames: checked when decoded
        return ""
    try:
        bits = int(dataset.BitsAllocated)
        needed = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1)) * \
            int(dataset.get("NumberOfFrames", 1) or 1) * bits
    except (AttributeError, TypeError, ValueError):
        return "has no valid Rows, Columns or BitsAllocated"
    needed_bytes = (needed + 7) // 8
    value_start = getattr(element, "value_tell", None) if value is None else None
    on_disk = path.stat().st_size - value_start if value_start is not None else length
    if length < needed_bytes or on_disk < min(length, needed_bytes):
        return (f"is truncated or damaged (pixel data holds {min(length, on_disk)} bytes, "
                f"{needed_bytes} needed)")
    return ""


def require_pydicom():
    """pydicom, or a message saying how to get it (Slicer bundles it; a bare Python may not have it)."""
    try:
        import pydicom
    except ImportError:
        raise InputError("Reading DICOM needs the pydicom package: pip install pydicom (in Slicer: "
                         "slicer.util.pip_install('pydicom')).") from None
    return pydicom


def require_complete(dataset, path: Path, what: str) -> None:
    """Refuse a file cut short: its last element must end where the file does (a sequence of undefined length
    with its delimiter). pydicom reads a cut file silently, and a cut SEG or RTSTRUCT loses whole segments."""
    tags = list(dataset.keys())
    if not tags:
        raise InputError(f"The {what} '{path}' is empty or damaged.")
    try:
        element = dataset.get_item(tags[-1], keep_deferred=True)
    except TypeError:  # pydicom < 3
        element = dataset.get_item(tags[-1])
    length, start = getattr(element, "length", None), getattr(element, "value_tell", None)
    if length is None or start is None:
        return  # already decoded: its reader checked it
    size = path.stat().st_size
    if length == UNDEFINED_LENGTH:
        with open(path, "rb") as handle:
            handle.seek(max(size - 8, 0))
            complete = handle.read(8) in (SEQUENCE_DELIMITER, SEQUENCE_DELIMITER_BIG_ENDIAN)
    else:
        complete = start + length <= size
    if not complete:
        raise InputError(f"The {what} '{path}' is cut short (its last element, {tags[-1]}, ends after the end of "
                         f"the file): it is incomplete or damaged. Export it again.")


def read_header(path: Path) -> DicomFile | None:
    """The header of a DICOM file; None for a file that is not DICOM (notes, thumbnails, DICOMDIR)."""
    pydicom = require_pydicom()
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():  # pydicom's notes on damaged files go to stderr; the message below says it
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(str(path), defer_size=64)
    except InvalidDicomError:
        return None
    except Exception as error:  # a DICOM file cut short in its header, an impossible length...
        raise InputError(f"The DICOM file '{path}' is damaged ({str(error).strip() or type(error).__name__}). "
                         f"Export the series again from PACS.") from error
    if not list(dataset.keys()):
        raise InputError(f"The DICOM file '{path}' has no readable content: it is cut short or damaged. Export the "
                         f"series again from PACS.")
    require_complete(dataset, path, "DICOM file")
    sop_class = str(dataset.get("SOPClassUID", "") or dataset.file_meta.get("MediaStorageSOPClassUID", ""))
    if sop_class == DICOMDIR_STORAGE:
        return None
    if "SeriesInstanceUID" not in dataset:  # required in every series object: a file cut short in its header
        raise InputError(f"The DICOM file '{path}' has no SeriesInstanceUID: it is damaged or incomplete. Export "
                         f"the series again from PACS (or remove the file if it does not belong there).")
    header = DicomFile(path=path, sop_class_uid=sop_class, sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
                       series_uid=str(dataset.SeriesInstanceUID), modality=str(dataset.get("Modality", "")),
                       description=str(dataset.get("SeriesDescription", "")).strip(),
                       series_number=str(dataset.get("SeriesNumber", "") or ""),
                       frame_of_reference_uid=str(dataset.get("FrameOfReferenceUID", "")))
    if sop_class in (SEG_STORAGE, RTSTRUCT_STORAGE) or "Rows" not in dataset:
        return header
    header.rows, header.columns = int(dataset.Rows), int(dataset.Columns)
    header.position = _numbers(dataset, "ImagePositionPatient", 3)
    header.orientation = _numbers(dataset, "ImageOrientationPatient", 6)
    header.pixel_spacing = _numbers(dataset, "PixelSpacing", 2)
    if header.pixel_spacing is None and _numbers(dataset, "NominalScannedPixelSpacing", 2) is not None:
        header.pixel_spacing = _numbers(dataset, "NominalScannedPixelSpacing", 2)  # secondary capture (ITK writes it)
        header.spacing_source = "NominalScannedPixelSpacing"
    header.frames = int(dataset.get("NumberOfFrames", 1) or 1)
    header.pixel_problem = _pixel_problem(dataset, path)
    header.spacing_between_slices = _optional_float(dataset, "SpacingBetweenSlices")
    header.slice_thickness = _optional_float(dataset, "SliceThickness")
    header.rescale = (str(dataset.get("RescaleSlope", "")), str(dataset.get("RescaleIntercept", "")))
    if int(dataset.get("SamplesPerPixel", 1)) != 1:
        header.pixel_problem = header.pixel_problem or "has colour pixels (a CT has one value per pixel)"
    return header


def scan_folder(folder: Path) -> list[DicomSeries]:
    """Every DICOM series directly in ``folder`` (files only, not sub-folders), in file-name order."""
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file() and not entry.name.startswith("."))
    except OSError as error:
        raise InputError(f"Cannot list the folder '{folder}' ({error.strerror or error}).") from error
    series: dict[str, DicomSeries] = {}
    for name in names:
        header = read_header(folder / name)
        if header is not None:
            series.setdefault(header.series_uid, DicomSeries(header.series_uid)).files.append(header)
    return list(series.values())


def choose_series(folder: Path, found: Sequence[DicomSeries], wanted: Sequence[str], what: str) -> DicomSeries:
    """The one series of ``found`` to read: the only one, or the one whose UID is in ``wanted``."""
    if not found:
        subfolders = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        hint = f" It has sub-folders ({', '.join(subfolders[:5])}): point to the one holding the slices." \
            if subfolders else ""
        raise InputError(f"The folder '{folder}' holds no DICOM series (looking for {what}).{hint}")
    chosen = [series for series in found if series.uid in {uid.strip() for uid in wanted}]
    if len(chosen) == 1:
        return chosen[0]
    if len(found) == 1 and not chosen:
        return found[0]
    listing = "\n".join(f"  {series.describe()}" for series in found)
    if chosen:
        raise InputError(f"Several of the given series UIDs are in '{folder}'; give only one of:\n{listing}")
    given = " (none of the given --series UIDs is there)" if wanted else ""
    raise InputError(f"The folder '{folder}' holds {len(found)} DICOM {what}{given}; choose one with "
                     f"--series UID:\n{listing}")


def _where(position: np.ndarray, normal: np.ndarray) -> str:
    """A slice position as people read it: 'z = 12.5 mm' for axial slices, else the offset along the normal."""
    axis = int(np.argmax(np.abs(normal)))
    if abs(normal[axis]) > 0.9:
        return f"{'xyz'[axis]} = {position[axis]:.6g} mm"
    return f"{float(position @ normal):.6g} mm along the slice normal"


def _require_same(files: Sequence[DicomFile], folder: Path) -> None:
    """One orientation, size and pixel spacing for every slice, all stated."""
    for header in files:
        if header.pixel_problem:
            raise InputError(f"The slice '{header.path.name}' in '{folder}' {header.pixel_problem}. The series "
                             f"is incomplete: export it again from PACS.")
        for value, name in ((header.position, "ImagePositionPatient"), (header.orientation, "ImageOrientationPatient"),
                            (header.pixel_spacing, "PixelSpacing")):
            if value is None:
                raise InputError(f"The slice '{header.path.name}' in '{folder}' has no valid {name}, so its place "
                                 f"in the volume is unknown.")
        if header.frames != 1:
            raise InputError(f"'{header.path.name}' in '{folder}' is a multi-frame (enhanced) image with "
                             f"{header.frames} frames; export the series as one file per slice (classic CT).")
        if np.any(header.pixel_spacing <= 0):
            raise InputError(f"The slice '{header.path.name}' in '{folder}' has PixelSpacing "
                             f"{list(header.pixel_spacing)}; spacings must be above 0.")
    first = files[0]
    for header in files[1:]:
        differs = [name for name, same in (
            ("orientation", np.allclose(header.orientation, first.orientation, atol=DIRECTION_TOLERANCE)),
            ("size", (header.rows, header.columns) == (first.rows, first.columns)),
            ("pixel spacing", np.allclose(header.pixel_spacing, first.pixel_spacing, rtol=1e-4, atol=1e-6)))
            if not same]
        if differs:
            raise InputError(f"The slices of series {first.series_uid} in '{folder}' differ in "
                             f"{' and '.join(differs)} ('{first.path.name}': {first.columns} x {first.rows} pixels, "
                             f"orientation {list(np.round(first.orientation, 4))}; '{header.path.name}': "
                             f"{header.columns} x {header.rows}, {list(np.round(header.orientation, 4))}). A volume "
                             f"needs slices of one kind; export the series again or choose another.")
    row, column = first.orientation[:3], first.orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(column) - 1) > 1e-3 or abs(row @ column) > 1e-3:
        raise InputError(f"The ImageOrientationPatient of series {first.series_uid} in '{folder}' "
                         f"({list(first.orientation)}) is not two perpendicular unit vectors.")


@dataclass
class SeriesLayout:
    """Slices in order along the normal and the grid they form."""

    files: list[DicomFile]
    geometry: Geometry
    warnings: list[str]


def series_layout(series: DicomSeries, folder: Path) -> SeriesLayout:
    """Order the slices and check that they form one evenly spaced volume (see the module docstring)."""
    files = list(series.files)
    _require_same(files, folder)
    first = files[0]
    row, column = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row, column)
    files.sort(key=lambda header: float(header.position @ normal))
    offsets = np.array([float(header.position @ normal) for header in files])
    warnings: list[str] = []
    if first.spacing_source != "PixelSpacing":
        warnings.append(f"Series {series.uid} in '{folder}' states no PixelSpacing; its {first.spacing_source} "
                        f"({' x '.join(f'{value:g}' for value in first.pixel_spacing)} mm) was used.")
    step_vector = normal * (first.spacing_between_slices or first.slice_thickness or 0.0)
    if len(files) > 1:
        steps = np.diff(offsets)
        usual = float(np.median(steps))
        for index, step in enumerate(steps):
            if step < DUPLICATE_FRACTION * usual or step < 1e-6:
                raise InputError(f"Two slices of series {series.uid} in '{folder}' lie at the same position "
                                 f"({_where(files[index].position, normal)}): '{files[index].path.name}' and "
                                 f"'{files[index + 1].path.name}'. The series holds duplicated slices (or several "
                                 f"acquisitions); export one volume.")
        tolerance = max(STEP_TOLERANCE_MM, STEP_TOLERANCE_FRACTION * usual)
        for index, step in enumerate(steps):
            if abs(step - usual) <= tolerance:
                continue
            between = (f"between the slice at {_where(files[index].position, normal)} ('{files[index].path.name}') "
                       f"and the slice at {_where(files[index + 1].position, normal)} "
                       f"('{files[index + 1].path.name}')")
            ratio = step / usual
            if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
                lost = round(ratio) - 1
                raise InputError(f"Series {series.uid} in '{folder}' has {lost} lost slice{'s' if lost > 1 else ''} "
                                 f"{between}: the step there is {step:.4g} mm, elsewhere {usual:.4g} mm. Export "
                                 f"the complete series again from PACS.")
            raise InputError(f"Series {series.uid} in '{folder}' has uneven slice spacing {between}: {step:.4g} mm "
                             f"there, {usual:.4g} mm elsewhere. A volume needs evenly spaced slices; export the "
                             f"series again or resample it to even spacing.")
        step_vector = (files[-1].position - files[0].position) / (len(files) - 1)
        expected = files[0].position + np.outer(np.arange(len(files)), step_vector)
        drift = np.linalg.norm(np.array([header.position for header in files]) - expected, axis=1)
        if drift.max() > tolerance:
            worst = int(np.argmax(drift))
            raise InputError(f"The slices of series {series.uid} in '{folder}' do not lie on one straight line: "
                             f"'{files[worst].path.name}' is {drift.max():.3g} mm off it. Export the series again.")
        tilt = float(np.arccos(np.clip(abs(step_vector @ normal) / np.linalg.norm(step_vector), -1.0, 1.0)))
        if tilt > TILT_WARNING_RADIANS:
            warnings.append(f"The slices of series {series.uid} are tilted by {np.degrees(tilt):.2f} degrees "
                            f"(gantry tilt); the voxel grid is sheared accordingly and volumes stay exact.")
    elif not np.any(step_vector):
        raise InputError(f"Series {series.uid} in '{folder}' has one slice and states no slice spacing or "
                         f"thickness, so its voxel volume is unknown.")
    else:
        warnings.append(f"Series {series.uid} in '{folder}' has a single slice; its thickness "
                        f"({np.linalg.norm(step_vector):.4g} mm) is taken as the voxel depth.")
    matrix = np.eye(4)
    matrix[:3, 0] = row * first.pixel_spacing[1]  # PixelSpacing = (between rows, between columns)
    matrix[:3, 1] = column * first.pixel_spacing[0]
    matrix[:3, 2] = step_vector
    matrix[:3, 3] = files[0].position
    return SeriesLayout(files, Geometry.from_lps(matrix, (len(files), first.rows, first.columns)), warnings)


def find_image_series(folder: Path, wanted: Sequence[str] = ()) -> DicomSeries:
    """The image series of ``folder`` to read (SEG and RTSTRUCT files there are not images)."""
    images = [series for series in scan_folder(folder) if series.first.is_image]
    return choose_series(folder, images, wanted, "image series")


def read_series_geometry(folder: Path, wanted: Sequence[str] = ()) -> SeriesLayout:
    """The checked layout of the image series in ``folder``, from headers only."""
    return series_layout(find_image_series(folder, wanted), folder)


def read_series_voxels(layout: SeriesLayout, folder: Path) -> np.ndarray:
    """Pixels of the slices in layout order (modality rescale applied by GDCM), as one [k, j, i] array.

    One ITK series read of the files in this order when every slice has the same rescale (7x faster than
    file by file); else file by file, so that each slice keeps its own rescale without a shared pixel type.
    """
    import SimpleITK as sitk

    shape = (len(layout.files), layout.files[0].rows, layout.files[0].columns)
    if len({header.rescale for header in layout.files}) == 1:
        reader = sitk.ImageSeriesReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileNames([str(header.path) for header in layout.files])
        showing = sitk.ProcessObject.GetGlobalWarningDisplay()
        sitk.ProcessObject.SetGlobalWarningDisplay(False)  # its spacing notes: the layout was checked here
        try:
            voxels = sitk.GetArrayFromImage(reader.Execute())
        except RuntimeError:
            voxels = None  # a slice that does not decode: found and named file by file below
        finally:
            sitk.ProcessObject.SetGlobalWarningDisplay(showing)
        if voxels is not None and voxels.shape == shape:
            return voxels
    slices = []
    for header in layout.files:
        try:
            image = sitk.ReadImage(str(header.path), imageIO="GDCMImageIO")
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
            raise InputError(f"The slice '{header.path.name}' in '{folder}' could not be decoded ({reason}); "
                             f"it may be damaged. Export the series again from PACS.") from error
        pixels = sitk.GetArrayFromImage(image)
        if pixels.shape[-2:] != (header.rows, header.columns) or pixels.size != header.rows * header.columns:
            raise InputError(f"The slice '{header.path.name}' in '{folder}' decoded to {pixels.shape} pixels, "
                             f"not {header.rows} x {header.columns}; it is damaged.")
        slices.append(pixels.reshape(header.rows, header.columns))
    common = np.result_type(*{pixels.dtype for pixels in slices})
    return np.stack([pixels.astype(common, copy=False) for pixels in slices])


def read_series(folder: Path, wanted: Sequence[str] = ()) -> tuple[np.ndarray, Geometry, list[str]]:
    """Voxels [k, j, i], geometry and warnings of the (chosen) image series in ``folder``."""
    layout = read_series_geometry(folder, wanted)
    return read_series_voxels(layout, folder), layout.geometry, layout.warnings
