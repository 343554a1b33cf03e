"""Reading and writing segmentations and images outside Slicer.

Supported segmentations: Slicer ``.seg.nrrd`` (layers, overlapping segments, names, tags; read with
slicerio/pynrrd), label images (``.nrrd``, ``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``, a folder of DICOM
slices), where each non-zero label value is one segment (named from TotalSegmentator's or nnU-Net's label
names when present: ``conventions.py``), folders of per-structure masks (``mask_folder.py``), and DICOM SEG
and RTSTRUCT files (``dicom_*.py``, ``rtstruct.py``). Geometry is read as the file states it (LPS in ITK,
NRRD and DICOM; NIfTI is converted by ITK) and kept as IJK-to-RAS. DICOM folders are read by
:mod:`.dicom_series`, which checks every slice first.

Reading never modifies a file; writing goes to a temporary file that replaces the target only when
complete, so an interrupted write cannot destroy an existing result.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..formats.integrity import require_regular_file
from ..formats.segments import LabelVolume, Segment
from ..formats.volume_files import read_volume, read_volume_geometry, reads_itself
from ..geometry import Geometry

LABEL_IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
SUPPORTED_TEXT = (".seg.nrrd, .nrrd, .nii, .nii.gz, .mha, .mhd, a folder of DICOM slices, or a DICOM SEG or "
                  "RTSTRUCT file")
# slicerio's fields that the reader turns into LabelVolume/Segment attributes, or that describe the voxels
# as stored; the others are kept as they are and written back (``file_fields``).
SEGMENT_FIELDS_USED = {"id", "name", "layer", "labelValue", "tags", "status", "extent"}
SEGMENTATION_FIELDS_USED = {"voxels", "ijkToLPS", "segments", "encoding", "referenceImageExtentOffset"}


@dataclass
class ImageVolume:
    """A scalar image (e.g. CT in HU) with its grid."""

    voxels: np.ndarray
    geometry: Geometry
    source: str = ""


def _existing_path(path: str | os.PathLike) -> Path:
    file_path = Path(path)
    if not file_path.exists():
        raise InputError(f"File not found: '{file_path}'. Check the path (relative paths start from "
                         f"'{Path.cwd()}').")
    if not file_path.is_dir():
        require_regular_file(file_path)  # a FIFO or device would block or never end
    return file_path


def _has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in suffixes)


def is_slicer_segmentation_file(path: str | os.PathLike) -> bool:
    """True for NRRD files carrying Slicer segment fields, whatever their name ends with."""
    file_path = Path(path)
    if not _has_suffix(file_path, (".nrrd", ".nhdr")):
        return False
    import nrrd

    try:
        header = nrrd.read_header(str(file_path))
    except Exception as error:  # pynrrd raises several types for damaged headers
        reason = str(error).rstrip(" .")
        raise InputError(f"Could not read '{file_path}' as NRRD ({reason}). The file may be damaged or "
                         f"incomplete.") from error
    return any(key.startswith("Segment0_") for key in header)


def _is_dicom(file_path: Path) -> bool:
    from .dicom_input import is_dicom_file

    return file_path.is_dir() or is_dicom_file(file_path)


def read_segmentation(path: str | os.PathLike, reference_image: str | os.PathLike | None = None,
                      series: Sequence[str] = ()) -> LabelVolume:
    """Read a Slicer segmentation, a label image, or DICOM (label series, SEG, RTSTRUCT); see the module
    docstring. ``reference_image`` is the CT an RTSTRUCT is rasterised on; ``series`` chooses among the DICOM
    series of a folder holding several."""
    file_path = _existing_path(path)
    if file_path.is_dir():
        from .mask_folder import is_mask_folder, read_mask_folder  # several files for one time point

        if is_mask_folder(file_path):
            return read_mask_folder(file_path)
    if _is_dicom(file_path):
        from .dicom_input import read_dicom_segmentation

        reference = _existing_path(reference_image) if reference_image is not None else None
        return read_dicom_segmentation(file_path, reference, series, _read_label_image)
    if _has_suffix(file_path, LABEL_IMAGE_SUFFIXES):
        if is_slicer_segmentation_file(file_path):
            return _read_slicer_segmentation(file_path)
        return _read_label_image(file_path)
    raise InputError(f"'{file_path.name}' is not a supported segmentation format. Use {SUPPORTED_TEXT}.")


def read_image(path: str | os.PathLike, series: Sequence[str] = ()) -> ImageVolume:
    """Read a scalar image such as a CT (any format ITK reads, or a DICOM series: a folder or one of its
    files; ``series`` chooses among several in one folder)."""
    file_path = _existing_path(path)
    if _is_dicom(file_path):
        from .dicom_input import read_dicom_image

        voxels, geometry, _ = read_dicom_image(file_path, series)
        return ImageVolume(voxels, geometry, str(file_path))
    if reads_itself(file_path):
        return ImageVolume(*read_volume(file_path), str(file_path))
    image = _read_itk_image(file_path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"'{file_path.name}' has {image.GetNumberOfComponentsPerPixel()} values per voxel "
                         f"(a colour or vector image); a CT with one value per voxel is needed.")
    import SimpleITK as sitk

    return ImageVolume(sitk.GetArrayFromImage(image), geometry_from_itk(image), str(file_path))


def geometry_from_itk(image) -> Geometry:
    """Grid of a SimpleITK image (ITK stores LPS)."""
    return Geometry.from_spacing_origin_direction(image.GetSpacing(), image.GetOrigin(), image.GetDirection(),
                                                  image.GetSize()[::-1])


def _unreadable(file_path: Path, error: RuntimeError) -> InputError:
    """ITK's long message cut to its last line, with what the user can check."""
    reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
    return InputError(f"Could not read '{file_path}' as an image ({reason}). The file may be damaged, "
                      f"incomplete, or not an image; supported: {SUPPORTED_TEXT}.")


def _require_3d(file_path: Path, dimension: int) -> None:
    if dimension != 3:
        raise InputError(f"'{file_path.name}' is a {dimension}-D image; a 3-D volume is needed.")


def _read_itk_image(file_path: Path):
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(file_path))
    except RuntimeError as error:
        raise _unreadable(file_path, error) from error
    _require_3d(file_path, image.GetDimension())
    return image


def read_image_geometry(path: str | os.PathLike, series: Sequence[str] = ()) -> Geometry:
    """Grid of a CT from its file header only (no voxels are read; a DICOM series from its slices' headers)."""
    import SimpleITK as sitk

    file_path = _existing_path(path)
    if _is_dicom(file_path):
        from .dicom_input import read_dicom_geometry

        return read_dicom_geometry(file_path, series)
    if reads_itself(file_path):
        return read_volume_geometry(file_path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(file_path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise _unreadable(file_path, error) from error
    _require_3d(file_path, reader.GetDimension())
    if reader.GetNumberOfComponents() != 1:
        raise InputError(f"'{file_path.name}' has {reader.GetNumberOfComponents()} values per voxel (a colour or "
                         f"vector image); a CT with one value per voxel is needed.")
    return geometry_from_itk(reader)


def _label_array(voxels: np.ndarray, source: str) -> tuple[np.ndarray, list[str]]:
    """Check that an image holds labels and return it as an integer array, with warnings."""
    warnings = []
    if np.issubdtype(voxels.dtype, np.bool_):
        return voxels.astype(np.uint8), warnings
    if np.issubdtype(voxels.dtype, np.floating):
        if not np.all(np.isfinite(voxels)):
            raise InputError(f"'{source}' contains NaN or infinite values; it is not a label image.")
        if np.any(voxels != np.round(voxels)):
            raise InputError(f"'{source}' holds fractional values, so it looks like an intensity image (CT/MR) "
                             f"or a probability map, not a segmentation. Give a label image (0 = "
                             f"background, other whole numbers = segments) or a .seg.nrrd file.")
        warnings.append(f"'{Path(source).name}' stores labels as floating point; its whole-number values "
                        f"were read as labels.")
        voxels = voxels.astype(np.int32)
    elif not np.issubdtype(voxels.dtype, np.integer):
        raise InputError(f"'{source}' holds {voxels.dtype} values; a label image holds whole numbers.")
    if voxels.dtype.kind == "i" and voxels.size and voxels.min() < 0:
        raise InputError(f"'{source}' has negative values (minimum {voxels.min()}), so it looks like a CT or "
                         f"other intensity image, not a segmentation. Label images use 0 for background.")
    return voxels, warnings


def _read_label_image(file_path: Path, series: Sequence[str] = ()) -> LabelVolume:
    """A label image file, or a DICOM label series (a folder; ``series`` chooses among several)."""
    import SimpleITK as sitk

    from .intensity_check import label_values_of_labels

    if file_path.is_dir():
        from .dicom_series import read_series

        voxels, geometry, notes = read_series(file_path, series)
    elif reads_itself(file_path):
        voxels, geometry = read_volume(file_path)
        notes = []
    else:
        image = _read_itk_image(file_path)
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"'{file_path.name}' has {image.GetNumberOfComponentsPerPixel()} values per voxel "
                             f"(a vector or colour image), not one label per voxel.")
        voxels, geometry, notes = sitk.GetArrayFromImage(image), geometry_from_itk(image), []
    voxels, warnings = _label_array(voxels, str(file_path))
    warnings = notes + warnings
    present = label_values_of_labels(voxels, file_path.name)
    from .conventions import label_names  # names its maker wrote (TotalSegmentator, nnU-Net), else "Label N"

    names, name_warnings = label_names(file_path, {int(value) for value in present})
    segments = [Segment(segment_id=str(value), name=names.get(int(value), f"Label {value}"), layer=0,
                        label_value=int(value)) for value in present]
    return LabelVolume([voxels], geometry, segments, str(file_path), warnings + name_warnings)


def _read_slicer_segmentation(file_path: Path) -> LabelVolume:
    import slicerio

    from ..formats.nrrd_header import nrrd_geometry
    from ..formats.nrrd_layers import read_layers
    from ..formats.segment_fields import check_segment_fields

    try:
        metadata = slicerio.read_segmentation(str(file_path), skip_voxels=True)
        layers, header = read_layers(file_path)
    except InputError:
        raise
    except Exception as error:  # damaged gzip stream, truncated data, unknown space...
        raise InputError(f"Could not read the Slicer segmentation '{file_path}': {error}. The file may be "
                         f"damaged or incomplete; re-save it from Slicer.") from error
    if len(header["sizes"]) not in (3, 4):
        raise InputError(f"'{file_path.name}' has {len(header['sizes'])} dimensions; a segmentation has 3 (or 4 "
                         f"with overlapping segments).")
    geometry = nrrd_geometry(header, str(file_path))
    layers = [_label_array(layer, str(file_path))[0] for layer in layers]
    field_warnings = check_segment_fields(metadata.get("segments", []), layers, str(file_path))
    segments = []
    for index, info in enumerate(metadata.get("segments", [])):
        if header.get(f"Segment{index}_ID", info["id"]) == info["id"] and f"Segment{index}_Name" in header:
            info["name"] = header[f"Segment{index}_Name"]  # as UTF-8 (slicerio's pynrrd drops non-ASCII letters)
        tags = dict(info.get("tags", {}))
        if "status" in info:
            tags["Segmentation.Status"] = info["status"]
        segments.append(Segment(segment_id=info["id"], name=info.get("name", info["id"]),
                                layer=int(info.get("layer", 0)), label_value=int(info.get("labelValue", 1)),
                                tags=tags, file_fields={key: value for key, value in info.items()
                                                        if key not in SEGMENT_FIELDS_USED}))
    return LabelVolume(layers, geometry, segments, str(file_path), field_warnings, file_fields={
        key: value for key, value in metadata.items() if key not in SEGMENTATION_FIELDS_USED})


# --- writing --------------------------------------------------------------------------------------------

SEGMENT_COLORS = ((0.89, 0.35, 0.25), (0.95, 0.76, 0.20), (0.36, 0.70, 0.38), (0.30, 0.55, 0.85),
                  (0.66, 0.40, 0.77), (0.95, 0.55, 0.65), (0.40, 0.80, 0.80), (0.75, 0.55, 0.35))
LIVER_COLOR = (0.86, 0.58, 0.48)


def _file_mode(path: Path) -> int:
    """Permissions for a written file: those of the file it replaces, else what the umask allows."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def require_writable_folder(path: str | os.PathLike) -> None:
    """The folder of a file to write must be (or can become) a folder this user writes in: checked before
    work whose result would otherwise be lost."""
    target = Path(path)
    folder = target.absolute().parent
    while not folder.exists() and folder != folder.parent:  # missing folders are created; check what holds them
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"Cannot write '{target}': '{folder}' is a file, not a folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write '{target}': the folder '{folder}' is not writable for you. Choose a "
                         f"folder you can write to.")


def _atomic_write(path: Path, write) -> None:
    """Call ``write(temporary_path)`` and move the result over ``path`` only when it succeeded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) or ".tmp"
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=str(path.parent))
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_segmentation(volume: LabelVolume, path: str | os.PathLike) -> None:
    """Write a Slicer ``.seg.nrrd`` that Slicer opens with names, layers, colours and tags."""
    import slicerio

    if not volume.layers:
        raise InputError("A segmentation needs at least one label layer to be written.")
    voxels = volume.layers[0].T if len(volume.layers) == 1 else np.stack([layer.T for layer in volume.layers])
    highest = max([int(layer.max(initial=0)) for layer in volume.layers]
                  + [segment.label_value for segment in volume.segments])
    smallest = label_type_for(highest)
    segments = []
    utf8_names: dict[str, str] = {}  # ASCII placeholder -> the name: pynrrd writes headers as ASCII only
    for index, segment in enumerate(volume.segments):
        color = LIVER_COLOR if segment.role == "liver" else SEGMENT_COLORS[index % len(SEGMENT_COLORS)]
        name = segment.name
        if not name.isascii():
            name = f"TTVPrognosis-name-{index}-{os.getpid()}"
            utf8_names[name] = segment.name
        entry = {"color": list(color), **segment.file_fields, "id": segment.segment_id, "name": name,
                 "layer": segment.layer, "labelValue": segment.label_value,
                 "extent": _segment_extent(volume, segment)}
        tags = dict(segment.tags)
        status = tags.pop("Segmentation.Status", None)
        if status:
            entry["status"] = status
        if tags:
            entry["tags"] = tags
        segments.append(entry)
    document = {**volume.file_fields, "voxels": voxels.astype(smallest, copy=False),
                "ijkToLPS": volume.geometry.ijk_to_lps, "segments": segments, "encoding": "gzip"}

    def write(temporary: Path) -> None:
        slicerio.write_segmentation(str(temporary), document, compression_level=1)
        if utf8_names:
            _put_utf8_names(temporary, utf8_names)

    _atomic_write(Path(path), write)


def _put_utf8_names(path: Path, names: dict[str, str]) -> None:
    """Replace placeholder names in the header by the UTF-8 names, as Slicer writes them (the data follows
    the header's blank line, so its offset is not written anywhere and may move)."""
    content = path.read_bytes()
    end = content.find(b"\n\n")
    lines = content[:end].split(b"\n")
    for index, line in enumerate(lines):
        key, separator, value = line.partition(b":=")
        if separator and value.decode("ascii", errors="replace") in names:
            lines[index] = key + separator + names[value.decode("ascii")].encode("utf-8")
    path.write_bytes(b"\n".join(lines) + content[end:])


def label_type_for(highest: int) -> np.dtype:
    """The smallest unsigned type that holds label values up to ``highest`` (a smaller one would wrap them
    and turn one segment into another)."""
    for candidate in (np.uint8, np.uint16, np.uint32, np.uint64):
        if highest <= np.iinfo(candidate).max:
            return np.dtype(candidate)
    raise InputError(f"Label value {highest} is too large to store in a segmentation file.")


def _segment_extent(volume: LabelVolume, segment: Segment) -> list[int]:
    """Slicer's per-segment extent (i0 i1 j0 j1 k0 k1); an empty segment gets an empty extent."""
    where = np.argwhere(volume.layers[segment.layer] == segment.label_value)
    if where.size == 0:
        return [0, -1, 0, -1, 0, -1]
    low_kji, high_kji = where.min(axis=0), where.max(axis=0)
    return [int(low_kji[2]), int(high_kji[2]), int(low_kji[1]), int(high_kji[1]), int(low_kji[0]),
            int(high_kji[0])]


def image_to_itk(voxels: np.ndarray, geometry: Geometry):
    """SimpleITK image with the grid of ``geometry`` (shear cannot be stored in ITK files)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(voxels)
    matrix = geometry.ijk_to_lps
    spacing = geometry.spacing
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in matrix[:3, 3]])
    image.SetDirection([float(v) for v in (matrix[:3, :3] / spacing).ravel()])
    return image


def write_image(voxels: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> None:
    """Write an image or label image in any format ITK writes, chosen by the file name."""
    import SimpleITK as sitk

    image = image_to_itk(voxels, geometry)

    def write(temporary: Path) -> None:
        try:
            sitk.WriteImage(image, str(temporary), useCompression=True)
        except RuntimeError as error:  # ITK says only "could not write": the disk may be full
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
            raise InputError(f"Could not write '{path}' ({reason}). The disk may be full or the folder not "
                             f"writable; free some space or choose another place, then run again.") from error

    _atomic_write(Path(path), write)
