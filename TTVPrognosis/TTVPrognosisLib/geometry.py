"""Voxel grids in patient space: where each voxel centre lies, in RAS millimetres.

Every array in this package is indexed ``[k, j, i]`` (the numpy order used by SimpleITK and by
``slicer.util.arrayFromVolume``) and travels with a :class:`Geometry` that maps ``(i, j, k)`` voxel
indices to RAS coordinates. Oblique and anisotropic grids are the normal case, so nothing here assumes
an identity direction matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
AXIS_NAMES = ("i", "j", "k")
PLAUSIBLE_SPACING_MM = (0.05, 20.0)  # CT voxels lie well inside this; outside it, the units are likely wrong


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``matrix`` (3 x 3, or 3 x 4 / 4 x 4 with a translation column) applied to points (N, 3).

    Written out, not with ``@``: numpy hands an (N x 3) product to OpenBLAS, whose threads then spin and
    burn another core (a third more CPU time per batch patient, measured), which a batch running one
    worker per core does not have to spare.
    """
    matrix = np.asarray(matrix, dtype=float)
    points = np.asarray(points, dtype=float)
    mapped = points[:, 0:1] * matrix[:3, 0] + points[:, 1:2] * matrix[:3, 1] + points[:, 2:3] * matrix[:3, 2]
    return mapped + matrix[:3, 3] if matrix.shape[1] == 4 else mapped


class GeometryError(InputError):
    """A voxel grid is unusable or does not fit another one."""


@dataclass(frozen=True, eq=False)
class Geometry:
    """Voxel grid: array shape (k, j, i) and the 4x4 matrix from (i, j, k) indices to RAS mm."""

    ijk_to_ras: np.ndarray
    shape_kji: tuple[int, int, int]

    def __post_init__(self) -> None:
        matrix = np.asarray(self.ijk_to_ras, dtype=float)
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise GeometryError(f"The IJK-to-RAS matrix must be a finite 4x4 matrix, got {matrix!r}.")
        if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
            raise GeometryError("The IJK-to-RAS matrix is singular: the image has a zero spacing or "
                                "collinear axes.")
        object.__setattr__(self, "ijk_to_ras", matrix)
        object.__setattr__(self, "shape_kji", tuple(int(n) for n in self.shape_kji))

    @classmethod
    def from_lps(cls, ijk_to_lps: np.ndarray, shape_kji: Sequence[int]) -> Geometry:
        """Build from an IJK-to-LPS matrix (DICOM, ITK, NRRD files use LPS)."""
        return cls(LPS_TO_RAS @ np.asarray(ijk_to_lps, dtype=float), tuple(shape_kji))

    @classmethod
    def from_spacing_origin_direction(cls, spacing: Sequence[float], origin_lps: Sequence[float],
                                      direction_lps: Sequence[float], shape_kji: Sequence[int]) -> Geometry:
        """Build from ITK-style spacing, LPS origin and row-major 3x3 LPS direction."""
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(direction_lps, dtype=float).reshape(3, 3) @ np.diag(spacing)
        matrix[:3, 3] = origin_lps
        return cls.from_lps(matrix, shape_kji)

    @property
    def ijk_to_lps(self) -> np.ndarray:
        return LPS_TO_RAS @ self.ijk_to_ras

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        return self.shape_kji[::-1]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along i, j, k in mm."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def direction_ras(self) -> np.ndarray:
        """Unit vectors of the i, j, k axes in RAS, as columns."""
        return self.ijk_to_ras[:3, :3] / self.spacing

    @property
    def origin_ras(self) -> np.ndarray:
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def voxel_volume_mm3(self) -> float:
        """Exact volume of one voxel, also for sheared grids (absolute determinant)."""
        return float(abs(np.linalg.det(self.ijk_to_ras[:3, :3])))

    @property
    def voxel_volume_ml(self) -> float:
        return self.voxel_volume_mm3 / 1000.0

    @cached_property
    def axial_axis_ijk(self) -> int:
        """Index axis (0=i, 1=j, 2=k) closest to the patient's superior-inferior axis.

        Axial slices are the planes where this index is constant; for usual CT it is k, but not for
        volumes stored with another axis order (some NIfTI files put S-I first). Kept once computed: every
        lesion's diameters ask for it, and the grid cannot change.
        """
        return int(np.argmax(np.abs(self.direction_ras[2, :])))

    @property
    def axial_axis_kji(self) -> int:
        """The same axis as :attr:`axial_axis_ijk`, as a numpy array axis."""
        return 2 - self.axial_axis_ijk

    @property
    def slice_thickness_mm(self) -> float:
        """Spacing between axial slices (what RECIST calls slice thickness)."""
        return float(self.spacing[self.axial_axis_ijk])

    def ras_from_ijk(self, ijk: np.ndarray) -> np.ndarray:
        """RAS coordinates (N, 3) of continuous (i, j, k) indices (N, 3)."""
        return apply_affine(self.ijk_to_ras, np.atleast_2d(np.asarray(ijk, dtype=float)))

    def ras_from_kji(self, kji: np.ndarray) -> np.ndarray:
        """RAS coordinates (N, 3) of array indices (N, 3) in numpy (k, j, i) order."""
        return self.ras_from_ijk(np.atleast_2d(np.asarray(kji, dtype=float))[:, ::-1])

    def ijk_from_ras(self, ras: np.ndarray) -> np.ndarray:
        """Continuous (i, j, k) indices (N, 3) of RAS points (N, 3)."""
        return apply_affine(np.linalg.inv(self.ijk_to_ras), np.atleast_2d(np.asarray(ras, dtype=float)))

    def kji_from_ras(self, ras: np.ndarray) -> np.ndarray:
        """Continuous numpy-order (k, j, i) indices (N, 3) of RAS points (N, 3)."""
        return self.ijk_from_ras(ras)[:, ::-1]

    def contains_ras(self, ras: Sequence[float]) -> bool:
        """True when the RAS point lies inside the grid (within half a voxel of a voxel centre)."""
        ijk = self.ijk_from_ras(np.asarray(ras, dtype=float))[0]
        return bool(np.all(ijk >= -0.5) and np.all(ijk <= np.asarray(self.shape_ijk) - 0.5))

    def bounds_ras(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned RAS box (min, max) around all voxel centres."""
        corners = np.array([[i, j, k] for i in (0, self.shape_ijk[0] - 1)
                            for j in (0, self.shape_ijk[1] - 1) for k in (0, self.shape_ijk[2] - 1)])
        points = self.ras_from_ijk(corners)
        return points.min(axis=0), points.max(axis=0)

    def describe(self) -> str:
        """One line a person can compare by eye: size, spacing, origin, axis directions."""
        spacing = " x ".join(f"{s:.4g}" for s in self.spacing)
        size = " x ".join(str(n) for n in self.shape_ijk)
        origin = ", ".join(f"{v:.2f}" for v in self.origin_ras)
        return f"size {size} voxels, spacing {spacing} mm, origin (RAS) ({origin})"

    def cropped(self, start_kji: Sequence[int], shape_kji: Sequence[int]) -> Geometry:
        """Geometry of the sub-grid starting at array index ``start_kji``."""
        matrix = self.ijk_to_ras.copy()
        matrix[:3, 3] = self.ras_from_kji(np.asarray(start_kji))[0]
        return Geometry(matrix, tuple(shape_kji))


def same_grid(first: Geometry, second: Geometry, tolerance_mm: float = 1e-3) -> bool:
    """True when both grids have the same shape and voxel centres (to ``tolerance_mm``)."""
    if first.shape_kji != second.shape_kji:
        return False
    return bool(np.allclose(first.ijk_to_ras, second.ijk_to_ras, rtol=0.0, atol=tolerance_mm))


def grid_offset_kji(grid: Geometry, reference: Geometry, tolerance_mm: float = 1e-3) -> np.ndarray | None:
    """Integer array offset of ``grid`` inside ``reference`` when both share spacing and axes.

    Slicer often stores a segmentation on a sub-extent of its CT; such a grid is compatible with the CT
    although the shapes differ. Returns None when the voxel lattices do not coincide.
    """
    if not np.allclose(grid.ijk_to_ras[:3, :3], reference.ijk_to_ras[:3, :3], rtol=0.0, atol=1e-6):
        return None
    offset_ijk = reference.ijk_from_ras(grid.origin_ras)[0]
    rounded = np.round(offset_ijk)
    residual_mm = np.linalg.norm(reference.ijk_to_ras[:3, :3] @ (offset_ijk - rounded))
    if residual_mm > tolerance_mm:
        return None
    return rounded.astype(int)[::-1]


def boxes_overlap(first: Geometry, second: Geometry) -> bool:
    """True when the RAS bounding boxes of two grids intersect (a wrong CT/segmentation pair does not)."""
    low_a, high_a = first.bounds_ras()
    low_b, high_b = second.bounds_ras()
    margin = np.maximum(first.spacing.max(), second.spacing.max())
    return bool(np.all(low_a <= high_b + margin) and np.all(low_b <= high_a + margin))


def spacing_warnings(geometry: Geometry) -> list[str]:
    """A voxel spacing no CT has (e.g. a file saved in metres): volumes would be off by powers of ten."""
    low, high = float(min(geometry.spacing)), float(max(geometry.spacing))
    if low >= PLAUSIBLE_SPACING_MM[0] and high <= PLAUSIBLE_SPACING_MM[1]:
        return []
    return [f"The voxel spacing ({' x '.join(f'{value:g}' for value in geometry.spacing)} mm) is outside "
            f"{PLAUSIBLE_SPACING_MM[0]:g}-{PLAUSIBLE_SPACING_MM[1]:g} mm, unusual for CT: check that the file's "
            f"units are millimetres (volumes scale with their cube)."]


def reference_grid_warnings(segmentation: Geometry, image: Geometry, segmentation_name: str = "the segmentation",
                            image_name: str = "the image") -> list[str]:
    """Check a segmentation against its CT: an error when they cannot belong together, else warnings.

    Slicer may store a segmentation on a cropped extent of the CT's lattice, which is fine. A grid with
    other spacing or axes still gives a TTV on its own grid, but the user should know. No overlap at all
    means the wrong CT or the wrong patient.
    """
    if not boxes_overlap(segmentation, image):
        raise GeometryError(f"{segmentation_name} and {image_name} do not overlap in space, so they cannot belong "
                            f"to the same scan. Segmentation: {segmentation.describe()}; image: "
                            f"{image.describe()}. Check that the right CT was chosen.")
    if same_grid(segmentation, image) or grid_offset_kji(segmentation, image) is not None:
        return []
    return [f"{segmentation_name} is on another voxel grid than {image_name} (segmentation: "
            f"{segmentation.describe()}; image: {image.describe()}). Volumes are counted on the segmentation's "
            f"own grid."]
