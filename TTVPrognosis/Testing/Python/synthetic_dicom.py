"""Synthetic DICOM written at test time (never copied data): CT or label series, SEG and RTSTRUCT.

A series is written slice by slice with pydicom from a numpy volume and a plain description of its grid,
so a test knows the voxel truth exactly and can then damage the files the way PACS exports go wrong (a lost,
duplicated, empty or truncated slice; uneven spacing; two series in one folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def new_uid() -> str:
    from pydicom.uid import generate_uid

    return generate_uid()


@dataclass
class SeriesGrid:
    """Where the slices of a series lie: LPS origin of slice 0, row/column directions, spacings."""

    shape_kji: tuple[int, int, int] = (12, 20, 24)
    spacing_ijk: tuple[float, float, float] = (0.8, 0.9, 2.5)
    origin_lps: tuple[float, float, float] = (-10.0, -12.0, 5.0)
    row_direction: tuple[float, float, float] = (1.0, 0.0, 0.0)  # direction of increasing column index i
    column_direction: tuple[float, float, float] = (0.0, 1.0, 0.0)  # direction of increasing row index j
    slice_positions_mm: Sequence[float] | None = None  # offsets along the normal; default k * spacing

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_direction, self.column_direction)

    def offsets(self) -> list[float]:
        if self.slice_positions_mm is not None:
            return [float(value) for value in self.slice_positions_mm]
        return [k * self.spacing_ijk[2] for k in range(self.shape_kji[0])]

    def position(self, k: int) -> np.ndarray:
        return np.asarray(self.origin_lps, float) + self.offsets()[k] * self.normal

    def ijk_to_lps(self) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, 0] = np.asarray(self.row_direction) * self.spacing_ijk[0]
        matrix[:3, 1] = np.asarray(self.column_direction) * self.spacing_ijk[1]
        matrix[:3, 2] = self.normal * self.spacing_ijk[2]
        matrix[:3, 3] = self.origin_lps
        return matrix


@dataclass
class SeriesIdentity:
    """UIDs and descriptions shared by the files of one series."""

    study_uid: str = field(default_factory=new_uid)
    series_uid: str = field(default_factory=new_uid)
    frame_of_reference_uid: str = field(default_factory=new_uid)
    description: str = "Synthetic CT"
    series_number: int = 1
    modality: str = "CT"


def ellipsoid_volume(grid: SeriesGrid, centre_lps: Sequence[float], radii_mm: Sequence[float]) -> np.ndarray:
    """Boolean [k, j, i] mask of voxel centres inside an axis-aligned (LPS) ellipsoid: the voxel truth."""
    k, j, i = np.indices(grid.shape_kji)
    matrix = grid.ijk_to_lps()
    points = np.stack([i, j, k], axis=-1).astype(float) @ matrix[:3, :3].T + matrix[:3, 3]
    scaled = (points - np.asarray(centre_lps)) / np.asarray(radii_mm)
    return (scaled ** 2).sum(axis=-1) <= 1.0


def slice_dataset(voxels_ji: np.ndarray, grid: SeriesGrid, k: int, identity: SeriesIdentity,
                  slope: float = 1.0, intercept: float = 0.0):
    """One slice as a pydicom Dataset (explicit VR little endian, 16-bit signed or unsigned)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    stored = np.round((voxels_ji - intercept) / slope)
    signed = bool(stored.min(initial=0) < 0)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_STORAGE
    meta.MediaStorageSOPInstanceUID = new_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = CT_STORAGE
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = identity.study_uid
    dataset.SeriesInstanceUID = identity.series_uid
    dataset.FrameOfReferenceUID = identity.frame_of_reference_uid
    dataset.SeriesDescription = identity.description
    dataset.SeriesNumber = identity.series_number
    dataset.Modality = identity.modality
    dataset.PatientID = "SYNTHETIC"
    dataset.PatientName = "Synthetic^Patient"
    dataset.PatientBirthDate = "19600101"
    dataset.PatientSex = "O"
    dataset.StudyDate = "20240101"
    dataset.StudyTime = "120000"
    dataset.StudyID = "1"
    dataset.AccessionNumber = "A1"
    dataset.ReferringPhysicianName = ""
    dataset.Manufacturer = "TTVPrognosis tests"
    dataset.InstanceNumber = k + 1
    dataset.ImagePositionPatient = [f"{value:.6f}" for value in grid.position(k)]
    dataset.ImageOrientationPatient = [f"{value:.8f}" for value in (*grid.row_direction, *grid.column_direction)]
    dataset.PixelSpacing = [f"{grid.spacing_ijk[1]:g}", f"{grid.spacing_ijk[0]:g}"]  # row spacing, column spacing
    dataset.SliceThickness = f"{grid.spacing_ijk[2]:g}"
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.Rows, dataset.Columns = voxels_ji.shape
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1 if signed else 0
    dataset.RescaleSlope = f"{slope:g}"
    dataset.RescaleIntercept = f"{intercept:g}"
    dataset.KVP = "120"
    dataset.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
    return dataset


def write_series(folder: Path, voxels_kji: np.ndarray, grid: SeriesGrid | None = None,
                 identity: SeriesIdentity | None = None, prefix: str = "slice", slope: float = 1.0,
                 intercept: float = 0.0) -> list[Path]:
    """Write one file per slice (names in random order so nothing relies on file names); returns the paths
    in slice order."""
    grid = grid or SeriesGrid(shape_kji=voxels_kji.shape)
    identity = identity or SeriesIdentity()
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(len(prefix) + voxels_kji.shape[0]).permutation(voxels_kji.shape[0])
    paths = []
    for k in range(voxels_kji.shape[0]):
        path = folder / f"{prefix}_{order[k]:04d}.dcm"
        slice_dataset(voxels_kji[k], grid, k, identity, slope, intercept).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def read_datasets(paths: Sequence[Path]) -> list:
    import pydicom

    return [pydicom.dcmread(path) for path in paths]


def write_seg(path: Path, source_paths: Sequence[Path], masks: Sequence[np.ndarray], segments: Sequence[dict],
              fractional: bool = False, omit_empty_frames: bool = True) -> Path:
    """A DICOM SEG made by highdicom from the source slices (in slice order) and one [k, j, i] mask (bool, or
    float in 0..1 for a fractional SEG) per segment. Each segment dict gives ``label`` and optionally
    ``category`` / ``type`` as (value, scheme, meaning) codes; default: a neoplasm."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = read_datasets(source_paths)
    descriptions = []
    for number, segment in enumerate(segments, start=1):
        category = hd.sr.CodedConcept(*segment["category"]) if "category" in segment \
            else codes.SCT.MorphologicallyAbnormalStructure
        kind = hd.sr.CodedConcept(*segment["type"]) if "type" in segment else codes.SCT.Neoplasm
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=segment["label"], segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
    pixels = np.stack([np.asarray(mask, dtype=np.float32 if fractional else bool) for mask in masks], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL if fractional
        else hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=new_uid(), series_number=100,
        sop_instance_uid=new_uid(), instance_number=1, manufacturer="TTVPrognosis tests",
        manufacturer_model_name="synthetic", software_versions="1", device_serial_number="1",
        omit_empty_frames=omit_empty_frames, max_fractional_value=255 if fractional else None)
    seg.save_as(path)
    return path


@dataclass
class Contour:
    """One closed planar contour: LPS points (N, 3)."""

    points_lps: np.ndarray


def ellipse_contours(grid: SeriesGrid, centre_lps: Sequence[float], radii_mm: Sequence[float],
                     vertices: int = 256) -> list[Contour]:
    """Per slice plane, the ellipse where the plane cuts an axis-aligned ellipsoid (axial grids only)."""
    contours = []
    for k in range(grid.shape_kji[0]):
        z = grid.position(k)[2]
        height = (z - centre_lps[2]) / radii_mm[2]
        if abs(height) >= 1.0:
            continue
        scale = np.sqrt(1.0 - height ** 2)
        angles = np.linspace(0.0, 2 * np.pi, vertices, endpoint=False)
        points = np.stack([centre_lps[0] + radii_mm[0] * scale * np.cos(angles),
                           centre_lps[1] + radii_mm[1] * scale * np.sin(angles), np.full(vertices, z)], axis=1)
        contours.append(Contour(points))
    return contours


def write_rtstruct(path: Path, source_paths: Sequence[Path], rois: Sequence[dict]) -> Path:
    """An RTSTRUCT written with pydicom: each ROI dict has ``name``, ``contours`` (list of :class:`Contour`)
    and optionally ``interpreted_type`` (e.g. GTV, ORGAN)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian

    sources = read_datasets(source_paths)
    first = sources[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    meta.MediaStorageSOPInstanceUID = new_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    structure = Dataset()
    structure.file_meta = meta
    structure.SOPClassUID = RTSTRUCT_STORAGE
    structure.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    structure.Modality = "RTSTRUCT"
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyTime", "StudyID"):
        setattr(structure, keyword, getattr(first, keyword))
    structure.SeriesInstanceUID = new_uid()
    structure.SeriesNumber = 200
    structure.StructureSetLabel = "Synthetic"
    structure.StructureSetDate = "20240101"

    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    referenced_series = Dataset()
    referenced_series.SeriesInstanceUID = first.SeriesInstanceUID
    referenced_series.ContourImageSequence = DicomSequence([_image_reference(source) for source in sources])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([referenced_series])
    frame.RTReferencedStudySequence = DicomSequence([study])
    structure.ReferencedFrameOfReferenceSequence = DicomSequence([frame])

    roi_items, contour_items, observations = [], [], []
    for number, roi in enumerate(rois, start=1):
        item = Dataset()
        item.ROINumber = number
        item.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        item.ROIName = roi["name"]
        item.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(item)
        contours = []
        for contour in roi["contours"]:
            entry = Dataset()
            entry.ContourGeometricType = "CLOSED_PLANAR"
            entry.NumberOfContourPoints = len(contour.points_lps)
            entry.ContourData = [f"{value:.4f}" for value in np.asarray(contour.points_lps).ravel()]
            contours.append(entry)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = [255, 0, 0]
        roi_contour.ContourSequence = DicomSequence(contours)
        contour_items.append(roi_contour)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = roi.get("interpreted_type", "")
        observation.ROIInterpreter = ""
        observations.append(observation)
    structure.StructureSetROISequence = DicomSequence(roi_items)
    structure.ROIContourSequence = DicomSequence(contour_items)
    structure.RTROIObservationsSequence = DicomSequence(observations)
    structure.save_as(path, enforce_file_format=True)
    return path


def _image_reference(source):
    from pydicom.dataset import Dataset

    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return reference
