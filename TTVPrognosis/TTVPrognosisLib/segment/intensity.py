"""The intensity model (step 2 of ``lesion``): the lesion's level (at the click, then just inside the
region's edge), the background's (the liver's parenchyma or the tissue around the region), and from them
the polarity (hypo- or hyperdense) and the threshold band.

Apart from growing because the band is the evidence reported with every segment
(:class:`IntensityModel`): it says why a voxel is in or out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import InputError
from .inputs import _describe_point
from .roi import _bounding_box, _box_slices, _equivalent_radius, _Roi, _seed_ball
from .settings import SegmentationSettings

HYPODENSE = "hypodense"
HYPERDENSE = "hyperdense"
CONTEXT_SAMPLE_LIMIT = 200_000
CONTEXT_MODE_FRACTION = 0.05
SOFT_TISSUE_CONTEXT_HU = (-50.0, 250.0)
HISTOGRAM_BIN_HU = 2.0


@dataclass(frozen=True)
class IntensityModel:
    """The statistics behind a segmentation: what the lesion and its surroundings look like, in HU.

    ``lower_hu``..``upper_hu`` is the band of the *smoothed* image that counts as lesion; ``noise_hu`` is
    the estimated noise of the raw CT.
    """

    polarity: str
    lesion_hu: float
    background_hu: float
    lower_hu: float
    upper_hu: float
    noise_hu: float

    @property
    def contrast_hu(self) -> float:
        return abs(self.background_hu - self.lesion_hu)


def _context_sample(ct_kji: np.ndarray, spacing: np.ndarray, seeds: np.ndarray,
                    liver_mask_kji: np.ndarray | None, existing_lesions_kji: np.ndarray | None,
                    settings: SegmentationSettings) -> np.ndarray:
    """HU of the tissue lesions sit in, from a wide box around the click (thinned out).

    That is the liver when a mask is given, else every soft-tissue voxel. Normal parenchyma is a property
    of the organ, not of the few mm around a lesion: a click in a necrotic centre is surrounded by the
    lesion's own rim, which a local shell would take for the background.
    """
    shape = np.asarray(ct_kji.shape)
    half_voxels = np.ceil(settings.context_half_size_mm / spacing).astype(int)
    start = np.maximum(seeds.min(axis=0) - half_voxels, 0)
    stop = np.minimum(seeds.max(axis=0) + half_voxels + 1, shape)
    stride = max(1, int(np.ceil((np.prod(stop - start) / CONTEXT_SAMPLE_LIMIT) ** (1.0 / 3.0))))
    box = tuple(slice(int(a), int(b), stride) for a, b in zip(start, stop))
    values = ct_kji[box].astype(np.float32)
    if liver_mask_kji is not None:
        inside = liver_mask_kji[box].astype(bool)
    else:
        inside = (values > SOFT_TISSUE_CONTEXT_HU[0]) & (values < SOFT_TISSUE_CONTEXT_HU[1])
    if existing_lesions_kji is not None:
        inside &= ~existing_lesions_kji[box].astype(bool)
    return values[inside]


def _seed_level(roi: _Roi, seeds: np.ndarray, settings: SegmentationSettings) -> float:
    """Median HU around the clicks, lightly smoothed: heavier smoothing would dilute a lesion of 5 mm."""
    margin = np.ceil((settings.seed_radius_mm + 3.0 * settings.min_smoothing_mm) / roi.spacing).astype(int)
    low = np.maximum(seeds.min(axis=0) - margin, 0)
    high = np.minimum(seeds.max(axis=0) + margin + 1, roi.raw.shape)
    box = _box_slices(low, high - low)
    light = ndi.gaussian_filter(roi.raw[box], settings.min_smoothing_mm / roi.spacing, mode="nearest")
    ball = _seed_ball(roi.raw.shape, roi.spacing, seeds, settings.seed_radius_mm)[box]
    return float(np.median(light[ball]))


@dataclass(frozen=True)
class _Distances:
    """Distances (mm) from a region's boundary over a box around it: depth inside, distance outside."""

    box: tuple[slice, slice, slice]
    inside: np.ndarray
    outside: np.ndarray


def _region_distances(region: np.ndarray, spacing: np.ndarray, margin_mm: float) -> _Distances:
    """One signed distance map serves both the layer inside the edge and the shell outside it."""
    box = _bounding_box(region, np.ceil(margin_mm / spacing).astype(int) + 1)
    image = sitk.GetImageFromArray(region[box].astype(np.uint8))
    image.SetSpacing([float(v) for v in spacing[::-1]])
    signed = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=True,
                                                                 squaredDistance=False, useImageSpacing=True))
    return _Distances(box, np.maximum(signed, 0.0), np.maximum(-signed, 0.0))


def _edge_level(roi: _Roi, distances: _Distances, fallback_hu: float,
                settings: SegmentationSettings) -> float:
    """Median of the layer just inside the region's edge, past its blur: the lesion tissue that meets the
    liver, which is what the half-contrast threshold must separate.

    Edge voxels would drag the level towards the background and let the band creep into the liver, and the
    centre may be necrotic; tiny regions without such a layer keep the level measured at the click.
    """
    depth = distances.inside
    inner = depth > settings.interior_depth_mm
    layer = inner & (depth <= settings.interior_depth_mm + settings.edge_layer_mm)
    values = roi.smoothed[distances.box][layer]
    if values.size < 10:
        values = roi.smoothed[distances.box][inner]
    return float(np.median(values)) if values.size >= 10 else fallback_hu


def _intensity_model(roi: _Roi, region: np.ndarray, distances: _Distances, lesion_hu: float,
                     points_ras: np.ndarray, settings: SegmentationSettings) -> IntensityModel:
    """Lesion vs surroundings: what tissue borders the region decides polarity and the threshold band.

    The band ends at ``edge_position`` (half) of the way to the background. On the other side it reaches as
    far, or halfway to a tissue that lies even farther (fat or air beside a hypodense lesion at the liver
    edge); closer classes on that side are the lesion's own heterogeneity (necrosis), not a border.
    """
    min_contrast = max(settings.min_contrast_hu, settings.min_contrast_noise_ratio * roi.smoothed_noise_hu)
    shell_modes = _shell_modes(roi, region, distances, lesion_hu, min_contrast, settings)
    context_hu = _dominant_level(roi.context_values, lesion_hu, min_contrast, roi.noise_hu)
    background_hu = _choose_background(shell_modes, context_hu, lesion_hu, roi.restricted_to_liver)
    if background_hu is None:
        surroundings = "the rest of the liver" if roi.restricted_to_liver else "its surroundings"
        raise InputError(f"{_describe_point(0, points_ras[0])}: the tissue there ({lesion_hu:.0f} HU) cannot "
                         f"be told apart from {surroundings} (noise {roi.noise_hu:.0f} HU). Click inside a "
                         "visible lesion, or draw it by hand.")
    polarity = HYPODENSE if background_hu > lesion_hu else HYPERDENSE
    near_bound = lesion_hu + settings.edge_position * (background_hu - lesion_hu)
    contrast = abs(background_hu - lesion_hu)
    far_side = [centre for centre, _ in shell_modes
                if (centre - lesion_hu) * (background_hu - lesion_hu) < 0
                and abs(centre - lesion_hu) > contrast]
    if far_side:
        far_bound = (lesion_hu + min(far_side, key=lambda centre: abs(centre - lesion_hu))) / 2.0
    else:
        far_bound = lesion_hu - (background_hu - lesion_hu)
    lower, upper = sorted((near_bound, far_bound))
    return IntensityModel(polarity, lesion_hu, background_hu, lower, upper, roi.noise_hu)


def _shell_modes(roi: _Roi, region: np.ndarray, distances: _Distances, lesion_hu: float, min_contrast: float,
                 settings: SegmentationSettings) -> list[tuple[float, float]]:
    """Tissue classes (HU, fraction) around the region that differ from the lesion.

    When the shell holds nothing distinct (the first guess covered only part of a large lesion), it is
    widened twice before giving up.
    """
    distinct: list[tuple[float, float]] = []
    for widening in (1.0, 2.0, 4.0):
        outer = _shell_outer_mm(region, roi.spacing, settings, widening)
        if widening > 1.0:
            distances = _region_distances(region, roi.spacing, outer)
        shell = (distances.outside > settings.shell_gap_mm) & (distances.outside <= outer)
        shell_values = roi.smoothed[distances.box][shell & roi.allowed[distances.box]]
        modes = _histogram_modes(shell_values, roi.smoothed_noise_hu, settings.min_mode_fraction)
        distinct = [(centre, mass) for centre, mass in modes if abs(centre - lesion_hu) >= min_contrast]
        if distinct or roi.restricted_to_liver:
            break
    return distinct


def _choose_background(shell_modes: list[tuple[float, float]], context_hu: float | None, lesion_hu: float,
                       restricted_to_liver: bool) -> float | None:
    """The intensity the lesion is set against.

    Inside a liver mask that is the parenchyma. Without one, the neighbourhood's usual soft tissue wins when
    the tissue bordering the region on its side lies between it and the lesion (a click in a necrotic centre
    must not be stopped by the lesion's own rim), or when most of the border is still lesion-like (the
    region has not reached its edge yet). Otherwise (a lung nodule in air) the dominant bordering tissue is
    the background.
    """
    if restricted_to_liver:
        return context_hu
    if context_hu is not None:
        context_contrast = abs(context_hu - lesion_hu)
        nested = any((centre - lesion_hu) * (context_hu - lesion_hu) > 0
                     and abs(centre - lesion_hu) <= context_contrast for centre, _ in shell_modes)
        if nested or sum(fraction for _, fraction in shell_modes) < 0.5:
            return context_hu
    return max(shell_modes, key=lambda mode: mode[1])[0] if shell_modes else None


def _dominant_level(values: np.ndarray, lesion_hu: float, min_contrast: float,
                    noise_hu: float) -> float | None:
    """The largest tissue class among ``values`` that differs from the lesion (masks include lesions).

    A class is a peak of the histogram, not just any frequent value: the tail of the lesion's own class
    (or of the parenchyma, when the click is on parenchyma) must not pass for a second tissue.
    """
    modes = _histogram_modes(values, noise_hu / 2.0, CONTEXT_MODE_FRACTION)
    distinct = [(centre, mass) for centre, mass in modes if abs(centre - lesion_hu) >= min_contrast]
    return max(distinct, key=lambda mode: mode[1])[0] if distinct else None


def _shell_outer_mm(region: np.ndarray, spacing: np.ndarray, settings: SegmentationSettings,
                    widening: float) -> float:
    """Outer radius of the shell sampled around a region: past its blurred edge, half its radius thick."""
    radius = _equivalent_radius(region, spacing)
    return settings.shell_gap_mm + widening * max(settings.shell_width_mm, 0.5 * radius)


def _histogram_modes(values: np.ndarray, smoothed_noise_hu: float,
                     min_fraction: float) -> list[tuple[float, float]]:
    """Peaks of the intensity histogram with the fraction of values in each peak's basin."""
    if values.size == 0:
        return []
    low, high = float(values.min()), float(values.max())
    bins = max(int(np.ceil((high - low) / HISTOGRAM_BIN_HU)), 1)
    counts, edges = np.histogram(values, bins=bins, range=(low, high + 1e-3))
    sigma_bins = max(smoothed_noise_hu, 3.0) / HISTOGRAM_BIN_HU
    density = ndi.gaussian_filter1d(counts.astype(float), sigma_bins, mode="constant")
    padded = np.concatenate(([-1.0], density, [-1.0]))
    peaks = np.flatnonzero((padded[1:-1] > padded[:-2]) & (padded[1:-1] >= padded[2:]))
    valleys = [0] + [int(np.argmin(density[a:b])) + a for a, b in zip(peaks[:-1], peaks[1:])] + [bins]
    centres = (edges[:-1] + edges[1:]) / 2.0
    total = float(counts.sum())
    modes = []
    for index, peak in enumerate(peaks):
        fraction = float(counts[valleys[index]:valleys[index + 1]].sum()) / total
        if fraction >= min_fraction:
            modes.append((float(centres[peak]), fraction))
    return modes
