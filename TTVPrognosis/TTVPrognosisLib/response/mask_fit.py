"""Liver masks as block fractions, and the least-squares fit that registers one to the other.

The liver-mask registration (:mod:`.registration`) works on each mask as the fraction of every block of
about 5 mm that lies inside the liver: masks are smooth, so these fractions keep the liver's shape and
position to well under a block, and a liver with its margin is about 100 000 blocks. This module holds that
representation (:class:`MaskBlocks`), the masks' moments for a start, and the fit itself (:class:`MaskFit`,
plain numpy and so reproducible to the last digit). Checking the result is the registration module's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..formats.io import ImageVolume, image_to_itk
from ..geometry import LPS_TO_RAS, Geometry, apply_affine
from ..measure.volumetry import nonzero_box

MASK_SMOOTHING_MM = 4.0  # Gaussian sigma applied to the fractions before fitting
MASK_EDGE_LEVEL = 1e-3  # mask fit samples where the smoothed baseline fraction is this far from 0 and from 1
MASK_MAX_ITERATIONS = 50  # steps per stage (rigid, affine); from a moments start it takes 2-10
MASK_TOLERANCE_MM = 0.01  # converged when a step moves no sample point by this much
FIT_SAMPLE_STRIDE = 2  # the fit samples edge blocks on every second block along each axis (1 in 8)
FIT_MIN_SAMPLES = 400  # fewer on that lattice (a small mask): every edge block is sampled
MASK_MAX_RETRIES = 8  # stronger damping tried this often before a step that lowers the error is given up
AXES_MIN_GAP = 0.05  # relative gap between second moments for principal axes to count as defined


def mask_box(mask: ImageVolume) -> tuple:
    """Bounding box (slices k, j, i) of a mask; an empty one cannot be registered (a reported failure)."""
    box = nonzero_box(mask.voxels)
    if box is None:
        raise RuntimeError(f"the liver mask{' of ' + mask.source if mask.source else ''} is empty")
    return box


@dataclass
class MaskBlocks:
    """A mask as the fraction of each block of voxels (about ``spacing_mm`` wide) that lies inside it.

    The blocks tile the mask's bounding box, starting at its first voxel (the last ones padded with empty
    voxels), and a margin of empty blocks (``margin_mm``, also past the edge of the scan) surrounds them:
    block means as ITK's BinShrink takes them, made with a few strided numpy additions instead of a float
    copy of the crop.
    """

    fractions: np.ndarray  # float32, (k, j, i)
    geometry: Geometry  # of the block grid (block centres)
    box: tuple  # the mask's bounding box on its own grid (slices k, j, i)

    @classmethod
    def of(cls, mask: ImageVolume, spacing_mm: float, margin_mm: float, box: tuple | None = None
           ) -> MaskBlocks:
        box = mask_box(mask) if box is None else box
        spacing_kji = mask.geometry.spacing[::-1]
        crop = mask.voxels[box]
        # A block never needs to be larger than the mask (voxels of a micrometre would make it huge).
        factors = np.array([min(max(1, round(spacing_mm / spacing)), size) for spacing, size in
                            zip(spacing_kji, crop.shape)])
        sums = block_sums(crop, factors)
        margin = np.minimum(np.ceil(margin_mm / (factors * spacing_kji)).astype(int), sums.shape)  # (same)
        fractions = np.pad(sums.astype(np.float32) / np.float32(np.prod(factors)),
                           [(int(blocks), int(blocks)) for blocks in margin])
        first_centre_kji = np.array([part.start for part in box]) - margin * factors + (factors - 1) / 2.0
        matrix = mask.geometry.ijk_to_ras.copy()
        matrix[:3, :3] = matrix[:3, :3] * factors[::-1]
        matrix[:3, 3] = mask.geometry.ras_from_kji(first_centre_kji)[0]
        return cls(fractions, Geometry(matrix, fractions.shape), box)

    def volume_mm3(self) -> float:
        """The mask's volume: its fractions summed, times the volume of a block."""
        return float(self.fractions.sum(dtype=np.float64)) * self.geometry.voxel_volume_mm3

    def image(self):
        return image_to_itk(self.fractions, self.geometry)

    def moments_lps(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre of mass and covariance (mm^2) of the mask, in LPS (blocks weighted by their fraction).

        Taken in index space from the fractions' marginal sums (no list of block positions), then mapped:
        a linear map sends the mean to the mean and the covariance C to A C A^T.
        """
        weights = self.fractions.astype(np.float64)
        total = weights.sum()
        indices = [np.arange(size, dtype=np.float64) for size in weights.shape]
        mean_kji = np.array([np.einsum("kji,k->", weights, indices[0]), np.einsum("kji,j->", weights, indices[1]),
                             np.einsum("kji,i->", weights, indices[2])]) / total
        offsets = [index - mean for index, mean in zip(indices, mean_kji)]
        planes = {(0, 1): weights.sum(axis=2), (0, 2): weights.sum(axis=1), (1, 2): weights.sum(axis=0)}
        covariance_kji = np.empty((3, 3))
        for axis in range(3):
            others = tuple(other for other in range(3) if other != axis)
            covariance_kji[axis, axis] = np.einsum("a,a->", weights.sum(axis=others), offsets[axis] ** 2) / total
        for (first, second), plane in planes.items():
            covariance_kji[first, second] = covariance_kji[second, first] = np.einsum(
                "ab,a,b->", plane, offsets[first], offsets[second]) / total
        kji_to_lps = (LPS_TO_RAS @ self.geometry.ijk_to_ras)[:3, [2, 1, 0, 3]]
        return kji_to_lps[:, :3] @ mean_kji + kji_to_lps[:, 3], kji_to_lps[:, :3] @ covariance_kji @ kji_to_lps[:, :3].T

    def centroid_lps(self) -> np.ndarray:
        return self.moments_lps()[0]


def block_sums(mask: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Voxel count of ``mask`` in each block of ``factors`` voxels (k, j, i); the last blocks padded with 0."""
    shape = np.array(mask.shape)
    padded = np.zeros(tuple(-(-shape // factors) * factors), dtype=np.uint8)
    padded[:shape[0], :shape[1], :shape[2]] = mask
    sums = padded
    counter = np.uint16 if np.prod(factors) <= np.iinfo(np.uint16).max else np.uint32
    for axis, factor in enumerate(factors):  # strided additions: a few passes over the (shrinking) array
        step = [slice(None)] * 3
        step[axis] = slice(0, None, factor)
        total = sums[tuple(step)].astype(counter)
        for offset in range(1, factor):
            step[axis] = slice(offset, None, factor)
            total += sums[tuple(step)]
        sums = total
    return sums


def principal_axes_rotation(fixed_covariance: np.ndarray, moving_covariance: np.ndarray,
                            max_rotation_deg: float) -> np.ndarray | None:
    """Rotation (LPS) taking the fixed mask's principal axes onto the moving mask's; None when ill-defined.

    Ill-defined: two second moments within AXES_MIN_GAP of each other in either mask (the axes may swap),
    or no sign choice within ``max_rotation_deg`` (then the optimiser starts from the centres alone).
    """
    values_f, axes_f = np.linalg.eigh(fixed_covariance)
    values_m, axes_m = np.linalg.eigh(moving_covariance)
    for values in (values_f, values_m):
        if values[0] <= 0 or np.min(np.diff(values) / values[1:]) < AXES_MIN_GAP:
            return None
    best = None
    for signs in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1), (-1, -1, -1), (-1, 1, 1), (1, -1, 1), (1, 1, -1)):
        rotation = axes_m @ np.diag(signs) @ axes_f.T
        if np.linalg.det(rotation) > 0 and (best is None or np.trace(rotation) > np.trace(best)):
            best = rotation
    angle_deg = np.degrees(np.arccos(np.clip((np.trace(best) - 1.0) / 2.0, -1.0, 1.0)))
    return best if angle_deg <= max_rotation_deg else None


class MaskFit:
    """Least-squares fit of the smoothed follow-up liver fractions to the baseline's (Levenberg-Marquardt).

    The error is the mean square difference of the two smoothed fraction images (Gaussian, sigma
    MASK_SMOOTHING_MM) at the baseline's edge blocks: where its smoothed fraction is within MASK_EDGE_LEVEL
    of neither 0 nor 1 (elsewhere both are flat and nothing moves the error). Each step solves the
    Gauss-Newton equations (damped, Levenberg-Marquardt), with the follow-up image and its gradient
    interpolated linearly; it stops when a step moves no sample point by MASK_TOLERANCE_MM, when no
    smaller error can be found, or after MASK_MAX_ITERATIONS steps. Masks are smooth and start close (from
    their moments), so this converges in a few steps, where a gradient descent takes dozens.
    Transforms are baseline-to-follow-up RAS matrices, about the centre of the sample points.
    """

    def __init__(self, fixed: MaskBlocks, moving: MaskBlocks):
        fixed_smooth = smoothed_fractions(fixed)
        moving_smooth = smoothed_fractions(moving)
        self.sampler = TrilinearSampler([moving_smooth, *np.gradient(moving_smooth)])  # value; d/dk, d/dj, d/di
        self.ras_to_kji = np.linalg.inv(moving.geometry.ijk_to_ras)[:3][::-1]  # (RAS, 1) -> (k, j, i)
        edge = (fixed_smooth > MASK_EDGE_LEVEL) & (fixed_smooth < 1.0 - MASK_EDGE_LEVEL)
        self.edge_blocks = int(np.count_nonzero(edge))
        step = FIT_SAMPLE_STRIDE
        lattice = np.argwhere(edge[::step, ::step, ::step]) * step
        samples_kji = lattice if len(lattice) >= FIT_MIN_SAMPLES else np.argwhere(edge)
        points = apply_affine(fixed.geometry.ijk_to_ras[:3, [2, 1, 0, 3]], samples_kji)  # (k, j, i) -> RAS
        self.size = len(points)
        self.centre = points.mean(axis=0) if self.size else np.zeros(3)
        self.offsets = points - self.centre
        self.target = fixed_smooth[tuple(samples_kji.T)]
        self.mean_square: float | None = None

    def _evaluate(self, linear: np.ndarray, shift: np.ndarray):
        """Mapped offsets, residuals and follow-up gradients (per index step) for y = linear (x - c) + c + shift."""
        mapped = apply_affine(linear, self.offsets)
        sampled = self.sampler(apply_affine(self.ras_to_kji, mapped + (self.centre + shift)))
        return mapped, sampled[:, 0] - self.target, sampled[:, 1:]

    def _parameters(self, baseline_to_followup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(linear part, shift) of a 4x4 matrix written about the sample centre: y = linear (x - c) + c + shift."""
        linear = np.asarray(baseline_to_followup, dtype=float)[:3, :3].copy()
        return linear, linear @ self.centre + baseline_to_followup[:3, 3] - self.centre

    def error(self, baseline_to_followup: np.ndarray) -> float:
        """Sum of squared residuals at the samples for a transform (4x4): to compare starts."""
        return sum_of_squares(self._evaluate(*self._parameters(baseline_to_followup))[1])

    def run(self, baseline_to_followup: np.ndarray, affine: bool) -> tuple[np.ndarray, int, str]:
        """Fit from a start (4x4); returns the fitted matrix, the number of steps taken, and why it stopped."""
        linear, shift = self._parameters(baseline_to_followup)
        mapped, residuals, gradient_kji = self._evaluate(linear, shift)
        error = sum_of_squares(residuals)
        damping = 1e-3
        steps = 0
        stop = f"stopped at the limit of {MASK_MAX_ITERATIONS} steps"
        while steps < MASK_MAX_ITERATIONS:
            gradient = apply_affine(self.ras_to_kji[:, :3].T, gradient_kji)  # d value / d RAS point
            if affine:  # d residual / d (linear part, row by row; shift), one row per parameter
                jacobian = np.vstack([(gradient[:, :, None] * self.offsets[:, None, :]).reshape(-1, 9).T,
                                      gradient.T])
            else:  # d residual / d (small rotation vector; shift)
                jacobian = np.vstack([np.cross(mapped, gradient).T, gradient.T])
            normal = np.einsum("in,jn->ij", jacobian, jacobian)
            rhs = -np.einsum("in,n->i", jacobian, residuals)
            ridge = 1e-12 * max(float(np.trace(normal)), 1e-30) * np.eye(len(rhs))
            for _attempt in range(MASK_MAX_RETRIES):
                try:
                    step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)) + ridge, rhs)
                except np.linalg.LinAlgError:
                    return self._finish(linear, shift, error, steps, "stopped: the fit is singular")
                new_linear = linear + step[:9].reshape(3, 3) if affine else rotation_from_vector(step[:3]) @ linear
                new_mapped = apply_affine(new_linear, self.offsets)
                if np.max(np.linalg.norm(new_mapped - mapped + step[-3:], axis=1)) < MASK_TOLERANCE_MM:
                    return self._finish(linear, shift, error, steps, f"converged after {_steps(steps)} (the "
                                        f"next would move no point by {MASK_TOLERANCE_MM} mm)")
                new_shift = shift + step[-3:]
                _, new_residuals, new_gradient_kji = self._evaluate(new_linear, new_shift)
                new_error = sum_of_squares(new_residuals)
                if new_error < error:
                    linear, shift, mapped, residuals, gradient_kji, error = \
                        new_linear, new_shift, new_mapped, new_residuals, new_gradient_kji, new_error
                    damping = max(damping / 10.0, 1e-7)
                    steps += 1
                    break
                damping *= 10.0
            else:
                return self._finish(linear, shift, error, steps, f"converged after {_steps(steps)} (no step "
                                    f"lowers the error)")
        return self._finish(linear, shift, error, steps, stop)

    def _finish(self, linear: np.ndarray, shift: np.ndarray, error: float, steps: int, stop: str):
        self.mean_square = error / max(self.size, 1)
        matrix = np.eye(4)
        matrix[:3, :3] = linear
        matrix[:3, 3] = self.centre + shift - linear @ self.centre
        return matrix, steps, stop


class TrilinearSampler:
    """Linear interpolation of several images on one grid at once, zero beyond it (plain numpy).

    The images are stored side by side with a border of zeros and gathered at the eight corners of every
    point's cell in one call: the fit samples the follow-up and its three gradient
    images at the same points, where four ``scipy.ndimage.map_coordinates`` calls would each redo the work.
    """

    def __init__(self, images: list[np.ndarray]):
        shape = np.array(images[0].shape) + 2
        channels = np.zeros((len(images), *shape))
        for index, image in enumerate(images):
            channels[index, 1:-1, 1:-1, 1:-1] = image
        self.values = channels.reshape(len(images), -1)
        strides = np.array([shape[1] * shape[2], shape[2], 1])
        self.strides = strides
        self.highest = (shape - 1).astype(float)
        self.last_cell = shape - 2
        corners = np.array([[k, j, i] for k in (0, 1) for j in (0, 1) for i in (0, 1)])  # the weights' order
        self.corner_offsets = corners @ strides

    def __call__(self, kji: np.ndarray) -> np.ndarray:
        """(N, channels) values at continuous (k, j, i) indices (N, 3) of the images' grid."""
        position = np.clip(kji.T + 1.0, 0.0, self.highest[:, None])  # (3, N); beyond the border of zeros: zero
        cell = np.minimum(position.astype(np.intp), self.last_cell[:, None])
        sides = np.empty((2, 3, len(kji)))
        np.subtract(position, cell, out=sides[1])  # weight of the upper neighbour along each axis
        np.subtract(1.0, sides[1], out=sides[0])
        weights = (sides[:, None, None, 0] * sides[None, :, None, 1] * sides[None, None, :, 2]).reshape(8, -1)
        base = cell[0] * self.strides[0] + cell[1] * self.strides[1] + cell[2]
        corners = np.take(self.values, self.corner_offsets[:, None] + base, axis=1)  # (channels, 8, N)
        return np.einsum("cn,vcn->nv", weights, corners)


def sum_of_squares(values: np.ndarray) -> float:
    return float(np.einsum("n,n->", values, values))


def _steps(count: int) -> str:
    return f"{count} step" if count == 1 else f"{count} steps"


def smoothed_fractions(blocks: MaskBlocks) -> np.ndarray:
    from scipy import ndimage

    sigma = MASK_SMOOTHING_MM / blocks.geometry.spacing[::-1]
    return ndimage.gaussian_filter(blocks.fractions.astype(np.float64), sigma, mode="constant", cval=0.0,
                                   truncate=3.0)


def rotation_from_vector(vector: np.ndarray) -> np.ndarray:
    """Rotation by |vector| radians about vector (Rodrigues)."""
    angle = float(np.linalg.norm(vector))
    if angle < 1e-15:
        return np.eye(3)
    x, y, z = vector / angle
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross
