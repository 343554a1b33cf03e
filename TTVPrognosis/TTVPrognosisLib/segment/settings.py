"""Tuning of one-click lesion segmentation (:class:`SegmentationSettings`).

A module of its own because every step (ROI, intensity model, growing, separation) reads the settings, and
none of them may import the entry point (``lesion``) that composes them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentationSettings:
    """Tuning of :func:`segment_lesion`; the defaults fit contrast-enhanced abdominal CT.

    ``edge_position`` places the lesion edge between the lesion level (0) and the background (1); 0.5 is
    the half-contrast level of a blurred step edge. Readers who draw the outer limit of a fuzzy margin
    (as in 3D-IRCADb) match a higher value better; see benchmarks/bench_segmentation.py.
    ``max_roi_voxels``: an enlarged ROI (a lesion past the first one's border) is worked on a grid of blocks
    of voxels coarsened to about this many, and its edge redrawn at full resolution; a huge value turns the
    coarse grid off.
    """

    edge_position: float = 0.5
    smoothing_mm: float = 1.5
    min_smoothing_mm: float = 0.6
    smoothing_fraction: float = 0.3
    seed_radius_mm: float = 2.0
    initial_roi_half_size_mm: float = 30.0
    max_lesion_diameter_mm: float = 150.0
    air_below_hu: float = -250.0
    bone_above_hu: float = 300.0
    min_contrast_hu: float = 10.0
    min_contrast_noise_ratio: float = 3.0
    min_mode_fraction: float = 0.1
    shell_gap_mm: float = 2.0
    shell_width_mm: float = 8.0
    context_half_size_mm: float = 60.0
    interior_depth_mm: float = 1.0
    edge_layer_mm: float = 3.0
    opening_fraction: float = 0.25
    max_opening_mm: float = 4.0
    neck_ratio: float = 0.7
    thin_ratio: float = 0.5
    max_iterations: int = 6
    settle_hu: float = 2.0
    max_roi_voxels: int = 400_000


DEFAULT_SETTINGS = SegmentationSettings()
