"""Checks on the voxels that keep an organ from being counted as tumour when no name or code says what it is.

Names and codes (``formats/roles.py``) recognise most livers; these checks catch the rest, independently of
names. A "lesion" (a 26-connected component of the lesion union) is refused when

- it is **organ-sized**: more than :data:`ORGAN_SIZED_ML` (1000 mL). Adult livers are about 1.2-1.8 L
  (Heinemann et al., Transplantation 1999, 67:366); the largest colorectal liver metastases seen in real
  data are a few hundred mL (3D-IRCADb-01 patient 6: 425 mL in 15 lesions; patient 17: 164 mL in 2). A
  single lesion of a litre (12 cm across) is so rare that asking the user to confirm it is right; or
- one of its segments **encloses** another lesion segment: at least :data:`ENCLOSED_SHARE` (half) of the
  other segment's voxels lie inside it (overlapping segments: a liver drawn with its tumours), or at least
  half of the voxels touching the other segment from outside (its 26-neighbour shell) belong to it (a
  label map, where the tumour is cut out of the liver). Metastases touch each other, but one does not
  surround another; an organ surrounds its tumours. Tumours at the liver's surface border it on less than
  their whole shell, so the share is taken over all the tumour voxels at once where a label holds several.

Segments the user named with ``--lesion-segment`` are the user's word and are not refused (a warning says
what was seen). The LiTS / MSD / nnU-Net label-map convention (1 = liver, 2 = tumour) is recognised by the
same enclosure and size measures (:func:`apply_label_map_convention`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..formats.segments import LESION_OPTION_REASON, ROLE_LESION, ROLE_LIVER, ROLE_OTHER, LabelVolume, Segment

ORGAN_SIZED_ML = 1000.0
ENCLOSED_SHARE = 0.5
# An organ enclosing the tumour label of a {1, 2} label map is read as the liver from this size on; below it,
# it is another organ (both kidneys together are 0.3-0.5 L, as in KiTS19) and is left out without a liver
# volume. Adult livers are rarely below 0.8 L.
LIVER_MIN_ML = 600.0
DEFAULT_LABEL_NAME = "Label {}"
LITS_LIVER_REASON = "label 1 of a liver/tumour label map (LiTS convention)"

Region = tuple[slice, slice, slice]


def _grown_box(mask: np.ndarray, offset: np.ndarray, shape: tuple[int, ...]) -> Region | None:
    """Bounding box of ``mask`` (placed at ``offset`` in a grid of ``shape``) grown by one voxel, clipped."""
    where = [np.flatnonzero(mask.any(axis=tuple(other for other in range(3) if other != axis))) for axis in range(3)]
    if any(found.size == 0 for found in where):
        return None
    return tuple(slice(max(0, int(offset[axis] + found[0]) - 1), min(shape[axis], int(offset[axis] + found[-1]) + 2))
                 for axis, found in enumerate(where))


def enclosure_share(container: np.ndarray, inner: np.ndarray) -> float:
    """How much ``container`` encloses ``inner`` (boolean arrays on one box that holds ``inner`` with a
    margin): the larger of the share of ``inner`` inside ``container`` and the share of ``inner``'s outer
    26-neighbour shell that belongs to ``container``."""
    from scipy import ndimage

    count = int(np.count_nonzero(inner))
    if count == 0:
        return 0.0
    inside = np.count_nonzero(container & inner) / count
    shell = ndimage.binary_dilation(inner, structure=np.ones((3, 3, 3), dtype=bool)) & ~inner
    shell_count = int(np.count_nonzero(shell))
    surrounded = np.count_nonzero(shell & container) / shell_count if shell_count else 0.0
    return float(max(inside, surrounded))


def _segment_mask(volume: LabelVolume, segment: Segment, region: Region) -> np.ndarray:
    return volume.layers[segment.layer][region] == segment.label_value


def _options_text(name: str) -> str:
    return (f"If '{name}' is the liver, name it: --liver-segment '{name}'; if it is another organ or not a "
            f"lesion: --exclude-segment '{name}'; if it really is one lesion, name the lesions: --lesion-segment "
            f"'{name}' (repeat for each lesion; wildcards allowed)")


def check_lesion(volume: LabelVolume, segments: list[Segment], region: Region, mask: np.ndarray,
                 warnings: list[str]) -> None:
    """Refuse one lesion (a component of the lesion union: ``mask`` on ``region`` of the grid, made of
    ``segments``) that is organ-sized or in which one segment encloses another; see the module docstring."""
    voxel_ml = volume.geometry.voxel_volume_ml
    volume_ml = int(np.count_nonzero(mask)) * voxel_ml
    unconfirmed = [segment for segment in segments if segment.role_reason != LESION_OPTION_REASON]
    if volume_ml > ORGAN_SIZED_ML:
        if unconfirmed:
            names = ", ".join(f"'{segment.name}'" for segment in unconfirmed)
            raise InputError(f"{volume.source or 'The segmentation'}: a lesion of {volume_ml:.0f} mL (segment(s) "
                             f"{names}) is organ-sized (over {ORGAN_SIZED_ML:.0f} mL), so it is probably the liver "
                             f"or another organ, not a metastasis. {_options_text(unconfirmed[0].name)}.")
        warnings.append(f"A lesion of {volume_ml:.0f} mL is organ-sized; it is counted because you named its "
                        f"segments with --lesion-segment.")
    if len(segments) < 2 or not unconfirmed:
        return
    offset = np.array([part.start for part in region])
    shape = volume.geometry.shape_kji
    for inner in segments:
        inner_box = _grown_box(_segment_mask(volume, inner, region) & mask, offset, shape)
        if inner_box is None:
            continue
        inner_mask = _segment_mask(volume, inner, inner_box)
        for outer in unconfirmed:
            if outer is inner:
                continue
            share = enclosure_share(_segment_mask(volume, outer, inner_box), inner_mask)
            if share >= ENCLOSED_SHARE:
                raise InputError(f"{volume.source or 'The segmentation'}: segment '{outer.name}' encloses lesion "
                                 f"segment '{inner.name}' ({share:.0%} of it lies inside or is surrounded by "
                                 f"'{outer.name}'), so '{outer.name}' is probably the liver or another organ, not a "
                                 f"metastasis. {_options_text(outer.name)}.")


def _default_named(segment: Segment) -> bool:
    return segment.name == DEFAULT_LABEL_NAME.format(segment.label_value) and segment.role == ROLE_LESION \
        and segment.role_reason not in (LESION_OPTION_REASON,) and not segment.role_reason.startswith("tagged")


def apply_label_map_convention(volume: LabelVolume) -> list[str]:
    """Recognise the LiTS / MSD Task03 / nnU-Net liver convention (a plain label map with exactly the values
    1 and 2, 1 = liver, 2 = tumour) by what the file holds: label 1 encloses label 2 or is organ-sized. Label 1
    then becomes the liver (or, when smaller than any liver, another organ left out); roles change in place."""
    segments = volume.segments
    if len(volume.layers) != 1 or len(segments) != 2 or {segment.label_value for segment in segments} != {1, 2} \
            or not all(_default_named(segment) for segment in segments):
        return []
    organ, tumour = sorted(segments, key=lambda segment: segment.label_value)
    layer = volume.layers[0]
    organ_ml = int(np.count_nonzero(layer == 1)) * volume.geometry.voxel_volume_ml
    tumour_mask = layer == 2
    box = _grown_box(tumour_mask, np.zeros(3, dtype=int), layer.shape)
    share = enclosure_share(layer[box] == 1, tumour_mask[box]) if box is not None else 0.0
    if share < ENCLOSED_SHARE and organ_ml <= ORGAN_SIZED_ML:
        return []
    seen = f"label 1 ({organ_ml:.0f} mL) " + (f"encloses label 2 ({share:.0%})" if share >= ENCLOSED_SHARE
                                              else "is organ-sized")
    if organ_ml >= LIVER_MIN_ML:
        organ.role, organ.role_reason = ROLE_LIVER, LITS_LIVER_REASON
        what = "label 1 is taken as the liver and label 2 as the tumour"
    else:
        organ.role, organ.role_reason = ROLE_OTHER, "label 1 of an organ/tumour label map"
        what = (f"label 1 is smaller than a liver ({LIVER_MIN_ML:.0f} mL), so it is taken as another organ (e.g. "
                f"the kidneys of KiTS) and left out, and label 2 as the tumour")
    tumour.role_reason = "label 2 of an organ/tumour label map"
    return [f"{volume.source or 'The label map'} holds the values 1 and 2 and {seen}: read as the LiTS / MSD / "
            f"nnU-Net convention (1 = organ, 2 = tumour); {what}. If that is wrong, say what the labels are: "
            f"--liver-segment 1, --exclude-segment 1, or --lesion-segment 1 --lesion-segment 2."]


def read_as_lits(volume: LabelVolume) -> bool:
    """True when ``volume`` (roles assigned) was read as the LiTS convention, label 1 being the liver."""
    return any(segment.role_reason == LITS_LIVER_REASON for segment in volume.segments)


def plain_label_map_of_lits_values(volume: LabelVolume) -> bool:
    """A plain label map (one layer, unnamed labels) holding no values but 1 and 2: at another time point of
    the same patient it follows the convention that time point was read with (a follow-up after a complete
    response holds only the liver, label 1, and would otherwise be one organ-sized "lesion")."""
    return len(volume.layers) == 1 and bool(volume.segments) and all(
        segment.label_value in (1, 2) and segment.name == DEFAULT_LABEL_NAME.format(segment.label_value)
        for segment in volume.segments)
