"""Deterministic CT-like abdominal volumes with liver lesions whose true masks are known exactly.

Tests and benchmarks need lesions of every size, hypo- and hyperdense, some at the liver edge and some
touching each other, on anisotropic grids with noise, and they need the same volume every time. Shapes are
rotated, slightly lobulated ellipsoids described analytically, so a voxel's truth is "its centre lies
inside", and the image gets partial-volume edges from the same analytic distance (no full-volume blur), which
lets the generator work slab by slab and build a 512x512x300 scan without holding float copies of it.

Coordinates are LPS millimetres with the volume centre at the origin and an identity direction matrix (the
usual axial CT); the :class:`Geometry` of a case converts them to RAS like any other image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.special import erfc

from TTVPrognosisLib.geometry import Geometry

AIR_HU = -1000.0
FAT_HU = -100.0
MUSCLE_HU = 45.0
LIVER_HU = 60.0
VESSEL_HU = 130.0
BONE_HU = 650.0
KIDNEY_HU = 150.0
BILE_HU = 10.0
STOMACH_FLUID_HU = 15.0
POINT_SPREAD_MM = 0.6
SLAB_SLICES = 16
PLACEMENT_ATTEMPTS = 4000
GAP_BETWEEN_LESIONS_MM = 4.0


@dataclass(frozen=True)
class LesionSpec:
    """What lesion to place: size, density, and where (interior, at the liver edge, or touching another)."""

    diameter_mm: float
    polarity: str = "hypodense"
    placement: str = "interior"
    neighbour_index: int | None = None
    necrotic_core: bool = False


@dataclass(frozen=True)
class SyntheticLesion:
    """A placed lesion: its label in ``lesion_labels_kji`` and how it was made."""

    label: int
    diameter_mm: float
    hu: float
    polarity: str
    placement: str
    centre_lps: tuple[float, float, float]
    neighbour_label: int | None = None
    necrotic_core: bool = False


@dataclass
class SyntheticCase:
    """A synthetic CT (int16 HU) with its liver mask and lesion label map, all on ``geometry``."""

    ct_kji: np.ndarray
    geometry: Geometry
    liver_mask_kji: np.ndarray
    lesion_labels_kji: np.ndarray
    lesions: tuple[SyntheticLesion, ...]
    noise_hu: float

    # Points (RAS mm) for bad-input tests: gas in the stomach, the spine, stomach fluid outside the liver.
    air_point_ras: np.ndarray = field(default_factory=lambda: _ras([55.0, -62.0, 38.0]))
    bone_point_ras: np.ndarray = field(default_factory=lambda: _ras([0.0, 100.0, 0.0]))
    outside_liver_point_ras: np.ndarray = field(default_factory=lambda: _ras([70.0, -30.0, 10.0]))

    def lesion_mask(self, label: int) -> np.ndarray:
        return self.lesion_labels_kji == label

    def parenchyma_point_ras(self) -> np.ndarray:
        """A liver voxel far from every lesion and the liver edge: a click on normal parenchyma."""
        stride = 2
        parenchyma = (self.liver_mask_kji & (self.lesion_labels_kji == 0))[::stride, ::stride, ::stride]
        depth = ndi.distance_transform_edt(parenchyma, sampling=self.geometry.spacing[::-1] * stride)
        deepest = np.array(np.unravel_index(np.argmax(depth), depth.shape)) * stride
        return self.geometry.ras_from_kji(deepest)[0]


# Catalogue used by tests and benchmarks: every size 5-80 mm, both densities, edge and touching lesions.
DEFAULT_LESIONS: tuple[LesionSpec, ...] = (
    LesionSpec(80.0, "hypodense", "liver edge", necrotic_core=True),
    LesionSpec(60.0, "hyperdense", "interior"),
    LesionSpec(40.0, "hypodense", "liver edge"),
    LesionSpec(30.0, "hypodense", "interior", necrotic_core=True),
    LesionSpec(25.0, "hypodense", "interior"),
    LesionSpec(20.0, "hypodense", "touching", neighbour_index=4),
    LesionSpec(20.0, "hyperdense", "liver edge"),
    LesionSpec(15.0, "hyperdense", "touching", neighbour_index=3),
    LesionSpec(12.0, "hypodense", "liver edge"),
    LesionSpec(10.0, "hypodense", "interior"),
    LesionSpec(10.0, "hyperdense", "interior"),
    LesionSpec(8.0, "hypodense", "interior"),
    LesionSpec(5.0, "hypodense", "interior"),
    LesionSpec(5.0, "hyperdense", "interior"),
)


@dataclass(frozen=True)
class Blob:
    """A rotated ellipsoid (an axis may be infinite: a cylinder) with optional lobulation, in LPS mm.

    ``signed_distance`` is the first-order distance to the surface, (q - s) / |grad q|, which is exact for
    spheres and good near the surface of any ellipsoid: that is all the partial-volume edge needs.
    """

    centre: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    lobulation: float = 0.0
    lobe_axes: np.ndarray = field(default_factory=lambda: np.eye(3))

    def bounding_radius(self) -> float:
        finite = self.semi_axes[np.isfinite(self.semi_axes)]
        return float(finite.max() * (1.0 + self.lobulation)) if finite.size else np.inf

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance (mm, negative inside) and the z component of the unit outward normal."""
        offsets = (x - self.centre[0], y - self.centre[1], z - self.centre[2])
        local = [sum(self.rotation[n, m] * offsets[n] for n in range(3)) for m in range(3)]
        q_squared = 0.0
        gradient_local = []
        for m in range(3):
            if np.isfinite(self.semi_axes[m]):
                q_squared = q_squared + (local[m] / self.semi_axes[m]) ** 2
                gradient_local.append(local[m] / self.semi_axes[m] ** 2)
            else:
                gradient_local.append(np.zeros_like(local[m]))
        q = np.sqrt(q_squared) + 1e-6
        gradient_norm = np.sqrt(sum(g ** 2 for g in gradient_local)) + 1e-9
        scale = self._lobe_scale(local)
        distance = (q - scale) * q / gradient_norm
        normal_z = sum(self.rotation[2, m] * gradient_local[m] for m in range(3)) / gradient_norm
        return distance.astype(np.float32), normal_z.astype(np.float32)

    def _lobe_scale(self, local: list[np.ndarray]) -> np.ndarray | float:
        if self.lobulation == 0.0:
            return 1.0
        length = np.sqrt(sum(c ** 2 for c in local)) + 1e-6
        dots = [sum(self.lobe_axes[n, m] * local[n] for n in range(3)) / length for m in range(3)]
        return 1.0 + self.lobulation * 3.0 * np.sqrt(3.0) * dots[0] * dots[1] * dots[2]

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Inside test for an (N, 3) array of LPS points."""
        distance, _ = self.signed_distance(points[:, 0], points[:, 1], points[:, 2])
        return distance < 0


@dataclass(frozen=True)
class Structure:
    """A blob painted with one HU value, optionally only where it lies inside another blob (``clip``)."""

    blob: Blob
    hu: float
    clip: Blob | None = None
    label: int = 0


@dataclass
class _Anatomy:
    body: list[Structure]
    liver: Blob
    organs: list[Structure]
    vessels: list[Structure]


def make_synthetic_ct(seed: int = 0, shape_kji: Sequence[int] = (76, 280, 360),
                      spacing_ijk: Sequence[float] = (1.0, 1.0, 2.5), noise_hu: float = 15.0,
                      lesion_specs: Sequence[LesionSpec] = DEFAULT_LESIONS) -> SyntheticCase:
    """Build one case; the same arguments always give the same arrays.

    The field of view must cover about 360 x 280 x 190 mm (LPS x, y, z) to hold the whole liver.
    """
    rng = np.random.default_rng(seed)
    geometry = _centred_geometry(shape_kji, spacing_ijk)
    anatomy = _make_anatomy(rng)
    lesions, lesion_structures = _place_lesions(rng, anatomy, lesion_specs)
    ct, liver_mask, labels = _paint(geometry, anatomy, lesion_structures, rng, noise_hu)
    return SyntheticCase(ct, geometry, liver_mask, labels, tuple(lesions), noise_hu)


def dice(first: np.ndarray, second: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    total = int(first.sum()) + int(second.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(first, second).sum()) / total


def click_point_ras(mask_kji: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Where a reader would click: the centroid, or the lesion voxel nearest to it when it falls outside."""
    voxels = np.argwhere(mask_kji)
    centroid = voxels.mean(axis=0)
    nearest = np.round(centroid).astype(int)
    if not mask_kji[tuple(nearest)]:
        physical = (voxels - centroid) * geometry.spacing[::-1]
        nearest = voxels[np.argmin((physical ** 2).sum(axis=1))]
        return geometry.ras_from_kji(nearest)[0]
    return geometry.ras_from_kji(centroid)[0]


def _ras(lps: Sequence[float]) -> np.ndarray:
    return np.array([-lps[0], -lps[1], lps[2]], dtype=float)


def _centred_geometry(shape_kji: Sequence[int], spacing_ijk: Sequence[float]) -> Geometry:
    shape_ijk = np.asarray(shape_kji[::-1], dtype=float)
    origin_lps = -(shape_ijk - 1.0) / 2.0 * np.asarray(spacing_ijk, dtype=float)
    return Geometry.from_spacing_origin_direction(spacing_ijk, origin_lps, np.eye(3).ravel(), shape_kji)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    matrix, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return matrix


def _make_anatomy(rng: np.random.Generator) -> _Anatomy:
    """Body wall, fat, spine, aorta, liver with gallbladder, kidney and stomach pressing on it, vessels."""
    inf = np.inf
    body = [
        Structure(Blob(np.array([0.0, 0.0, 0.0]), np.array([172.0, 132.0, inf])), MUSCLE_HU),
        Structure(Blob(np.array([0.0, 0.0, 0.0]), np.array([160.0, 120.0, inf])), FAT_HU),
        Structure(Blob(np.array([0.0, 100.0, 0.0]), np.array([18.0, 16.0, inf])), BONE_HU),
        Structure(Blob(np.array([25.0, 72.0, 0.0]), np.array([11.0, 11.0, inf])), VESSEL_HU),
    ]
    liver = Blob(np.array([-50.0, -10.0, 0.0]), np.array([105.0, 88.0, 74.0]), _random_rotation_small(rng),
                 lobulation=0.06, lobe_axes=_random_rotation(rng))
    stomach = Blob(np.array([62.0, -40.0, 25.0]), np.array([42.0, 34.0, 48.0]))
    organs = [
        Structure(Blob(np.array([-78.0, 78.0, -55.0]), np.array([30.0, 26.0, 50.0])), KIDNEY_HU),
        Structure(Blob(np.array([-40.0, -78.0, -42.0]), np.array([17.0, 17.0, 34.0])), BILE_HU),
        Structure(stomach, STOMACH_FLUID_HU),
        Structure(Blob(np.array([55.0, -62.0, 38.0]), np.array([24.0, 13.0, 20.0])), AIR_HU, clip=stomach),
    ]
    vessels = []
    for _ in range(5):
        through = liver.centre + rng.uniform(-0.5, 0.5, 3) * liver.semi_axes
        radius = rng.uniform(2.5, 4.5)
        vessels.append(Structure(Blob(through, np.array([radius, radius, inf]), _random_rotation(rng)),
                                 VESSEL_HU, clip=liver))
    return _Anatomy(body, liver, organs, vessels)


def _random_rotation_small(rng: np.random.Generator) -> np.ndarray:
    """A rotation of at most ~6 degrees per axis, so the liver stays where the organs expect it."""
    angles = rng.uniform(-0.1, 0.1, 3)
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        cos, sin = np.cos(angle), np.sin(angle)
        other = [a for a in range(3) if a != axis]
        step = np.eye(3)
        step[np.ix_(other, other)] = [[cos, -sin], [sin, cos]]
        rotation = rotation @ step
    return rotation


def _sphere_points(count: int = 400) -> np.ndarray:
    """Near-uniform unit vectors (Fibonacci sphere) for cheap 'does this ball fit here' tests."""
    index = np.arange(count) + 0.5
    polar = np.arccos(1.0 - 2.0 * index / count)
    azimuth = np.pi * (1.0 + 5.0 ** 0.5) * index
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def _place_lesions(rng: np.random.Generator, anatomy: _Anatomy,
                   specs: Sequence[LesionSpec]) -> tuple[list[SyntheticLesion], list[Structure]]:
    """Rejection-sample lesion centres so that each lesion sits where its spec says."""
    directions = _sphere_points()
    placed: list[tuple[np.ndarray, float]] = []
    lesions: list[SyntheticLesion] = []
    structures: list[Structure] = []
    partners = {spec.neighbour_index for spec in specs if spec.neighbour_index is not None}
    for index, spec in enumerate(specs):
        round_shape = index in partners or spec.neighbour_index is not None
        blob_shape = _lesion_shape(rng, spec, round_shape)
        reach = blob_shape.bounding_radius()
        centre = _find_centre(rng, anatomy, spec, reach, placed, directions)
        blob = Blob(centre, blob_shape.semi_axes, blob_shape.rotation, blob_shape.lobulation,
                    blob_shape.lobe_axes)
        label = index + 1
        hu = _lesion_hu(rng, spec.polarity)
        clip = anatomy.liver if spec.placement == "liver edge" else None
        structures.append(Structure(blob, hu, clip=clip, label=label))
        if spec.necrotic_core:
            core = Blob(centre, blob.semi_axes * 0.45, blob.rotation)
            structures.append(Structure(core, hu - 18.0, clip=clip))
        placed.append((centre, reach))
        neighbour = None if spec.neighbour_index is None else spec.neighbour_index + 1
        lesions.append(SyntheticLesion(label, spec.diameter_mm, hu, spec.polarity, spec.placement,
                                       tuple(float(v) for v in centre), neighbour, spec.necrotic_core))
    return lesions, structures


def _lesion_shape(rng: np.random.Generator, spec: LesionSpec, round_shape: bool) -> Blob:
    """Random ellipsoid; lesions meant to touch are kept nearly round so that they really do touch."""
    radius = spec.diameter_mm / 2.0
    if round_shape:
        axes = radius * rng.uniform(0.95, 1.05, 3)
        lobulation = 0.0
    else:
        axes = radius * rng.uniform(0.85, 1.15, 3)
        lobulation = rng.uniform(0.0, 0.1)
    return Blob(np.zeros(3), axes, _random_rotation(rng), lobulation, _random_rotation(rng))


def _lesion_hu(rng: np.random.Generator, polarity: str) -> float:
    if polarity == "hypodense":
        return LIVER_HU - rng.uniform(30.0, 45.0)
    return LIVER_HU + rng.uniform(40.0, 60.0)


def _find_centre(rng: np.random.Generator, anatomy: _Anatomy, spec: LesionSpec, reach: float,
                 placed: list[tuple[np.ndarray, float]], directions: np.ndarray) -> np.ndarray:
    for _ in range(PLACEMENT_ATTEMPTS):
        centre = _candidate_centre(rng, anatomy, spec, reach, placed)
        if _fits(centre, reach, spec, anatomy, placed, directions):
            return centre
    raise RuntimeError(f"Could not place a {spec.diameter_mm} mm {spec.placement} lesion; "
                       "use fewer or smaller lesions or another seed.")


def _candidate_centre(rng: np.random.Generator, anatomy: _Anatomy, spec: LesionSpec, reach: float,
                      placed: list[tuple[np.ndarray, float]]) -> np.ndarray:
    if spec.neighbour_index is not None:
        partner_centre, partner_reach = placed[spec.neighbour_index]
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        return partner_centre + direction * 0.9 * (partner_reach + reach)
    unit = rng.uniform(-1.0, 1.0, 3)
    return anatomy.liver.centre + anatomy.liver.rotation @ (unit * anatomy.liver.semi_axes)


def _fits(centre: np.ndarray, reach: float, spec: LesionSpec, anatomy: _Anatomy,
          placed: list[tuple[np.ndarray, float]], directions: np.ndarray) -> bool:
    """Interior lesions keep a margin inside the liver; edge lesions stick out by 20-60 % of their radius."""
    margin = GAP_BETWEEN_LESIONS_MM
    shell = centre + directions * (reach + margin)
    in_liver = anatomy.liver.contains(shell)
    if any(organ.blob.contains(shell).any() for organ in anatomy.organs):
        return False
    for other_index, (other_centre, other_reach) in enumerate(placed):
        if other_index == spec.neighbour_index:
            continue
        if np.linalg.norm(centre - other_centre) < reach + other_reach + margin:
            return False
    if spec.placement == "liver edge":
        depth, _ = anatomy.liver.signed_distance(*centre)
        return bool(-0.8 * reach < depth < -0.4 * reach) and 0.1 < 1.0 - in_liver.mean() < 0.5
    return bool(in_liver.all())


def _paint(geometry: Geometry, anatomy: _Anatomy, lesions: list[Structure], rng: np.random.Generator,
           noise_hu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite all structures slab by slab, with partial-volume edges and in-plane correlated noise."""
    shape = geometry.shape_kji
    ct = np.empty(shape, dtype=np.int16)
    liver_mask = np.zeros(shape, dtype=bool)
    labels = np.zeros(shape, dtype=np.uint8 if len(lesions) < 255 else np.uint16)
    axes_lps = _axis_coordinates(geometry)
    noise_gain = _noise_gain()
    for start in range(0, shape[0], SLAB_SLICES):
        stop = min(start + SLAB_SLICES, shape[0])
        x, y, z = axes_lps[0][None, None, :], axes_lps[1][None, :, None], axes_lps[2][start:stop, None, None]
        image = np.full((stop - start, shape[1], shape[2]), AIR_HU, dtype=np.float32)
        spacing = geometry.spacing
        for structure in anatomy.body:
            _composite(image, None, structure, (x, y, z), spacing)
        liver_structure = Structure(anatomy.liver, LIVER_HU)
        slab_liver = np.zeros(image.shape, dtype=bool)
        _composite(image, slab_liver, liver_structure, (x, y, z), spacing)
        for structure in anatomy.vessels:
            _composite(image, None, structure, (x, y, z), spacing)
        for structure in anatomy.organs:
            organ_inside = np.zeros(image.shape, dtype=bool)
            _composite(image, organ_inside, structure, (x, y, z), spacing)
            slab_liver &= ~organ_inside
        slab_labels = np.zeros(image.shape, dtype=labels.dtype)
        for structure in lesions:
            _composite(image, slab_labels if structure.label else None, structure, (x, y, z), spacing)
        noise = ndi.gaussian_filter(rng.standard_normal(image.shape).astype(np.float32), (0.0, 0.7, 0.7))
        image += noise * (noise_hu / noise_gain)
        ct[start:stop] = np.clip(np.round(image), -1024, 3071).astype(np.int16)
        liver_mask[start:stop] = slab_liver | (slab_labels > 0)
        labels[start:stop] = slab_labels
    return ct, liver_mask, labels


def _axis_coordinates(geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS x along i, y along j, z along k (the identity-direction grids built here)."""
    lps = geometry.ijk_to_lps
    return tuple(lps[axis, 3] + lps[axis, axis] * np.arange(geometry.shape_ijk[axis], dtype=np.float32)
                 for axis in range(3))


def _noise_gain() -> float:
    """Standard deviation left after the in-plane noise filter, to rescale noise to the requested HU."""
    impulse = np.zeros((1, 15, 15), dtype=np.float64)
    impulse[0, 7, 7] = 1.0
    return float(np.sqrt((ndi.gaussian_filter(impulse, (0.0, 0.7, 0.7)) ** 2).sum()))


def _composite(image: np.ndarray, inside: np.ndarray | None, structure: Structure,
               coordinates: tuple[np.ndarray, np.ndarray, np.ndarray], spacing: np.ndarray) -> None:
    """Blend one structure into a slab over its bounding box; mark voxel centres inside it."""
    box = _box(structure, coordinates, spacing)
    if box is None:
        return
    x, y, z = (coordinates[0][..., box[2]], coordinates[1][:, box[1], :], coordinates[2][box[0]])
    coverage, centre_inside = _coverage(structure.blob, x, y, z, spacing)
    if structure.clip is not None:
        clip_coverage, clip_inside = _coverage(structure.clip, x, y, z, spacing)
        coverage = coverage * clip_coverage
        centre_inside &= clip_inside
    block = image[box]
    block += coverage * (structure.hu - block)
    if inside is None:
        return
    if inside.dtype == bool:
        inside[box] |= centre_inside
    else:
        inside[box][centre_inside] = structure.label


def _coverage(blob: Blob, x: np.ndarray, y: np.ndarray, z: np.ndarray,
              spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of each voxel covered by the blob, from the distance and the voxel extent along the normal."""
    distance, normal_z = blob.signed_distance(x, y, z)
    in_plane = float(spacing[0] * spacing[1]) ** 0.5
    width_squared = POINT_SPREAD_MM ** 2 + (normal_z ** 2 * spacing[2] ** 2 + (1 - normal_z ** 2)
                                            * in_plane ** 2) / 12.0
    coverage = 0.5 * erfc(distance / np.sqrt(2.0 * width_squared))
    return coverage.astype(np.float32), distance < 0


def _box(structure: Structure, coordinates: tuple[np.ndarray, np.ndarray, np.ndarray],
         spacing: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Index box (k, j, i) of the slab that the structure (and its clip) can touch."""
    blobs = [structure.blob] if structure.clip is None else [structure.blob, structure.clip]
    slices = []
    for axis_lps in (2, 1, 0):
        values = np.ravel(coordinates[axis_lps])
        low, high = values[0], values[-1]
        for blob in blobs:
            extent = _extent_along(blob, axis_lps) + 3.0 * float(spacing.max())
            low = max(low, blob.centre[axis_lps] - extent)
            high = min(high, blob.centre[axis_lps] + extent)
        if low > high:
            return None
        step = values[1] - values[0] if values.size > 1 else 1.0
        first = int(np.clip(np.floor((low - values[0]) / step), 0, values.size - 1))
        last = int(np.clip(np.ceil((high - values[0]) / step), 0, values.size - 1))
        slices.append(slice(first, last + 1))
    return tuple(slices)


def _extent_along(blob: Blob, axis: int) -> float:
    """Half-extent of the blob along one LPS axis (infinite for a cylinder not perpendicular to it)."""
    weights = np.abs(blob.rotation[axis, :])
    if np.any(~np.isfinite(blob.semi_axes) & (weights > 1e-9)):
        return np.inf
    finite_axes = np.where(np.isfinite(blob.semi_axes), blob.semi_axes, 0.0)
    return float(np.sqrt(((weights * finite_axes) ** 2).sum()) * (1.0 + blob.lobulation))

