"""A Slicer ``.seg.nrrd`` checked against its own segment fields: the header and the voxels must agree.

A Slicer segmentation says twice where its segments are: ``sizes`` with the voxels, and per segment its
layer, label value and ``Extent`` (i0 i1 j0 j1 k0 k1 in the stored volume's voxels; Slicer writes the
extent of the segment's labelmap, which contains its voxels and may be larger: segments sharing a layer
share it). Damage to either shows as a disagreement:

- an extent outside the volume, or voxels of a layer outside the extents of its segments (``sizes``
  changed or swapped): refused;
- voxels of a label value no segment has, while a segment's label value has no voxels (a changed
  ``LabelValue`` or ``Layer``): refused. Either alone is normal (an empty segment in a shared layer keeps
  its value; other tools leave unlisted values), so values no segment has are only warned about;
- two segments with the same ID (IDs are how options and Slicer name segments; compared ignoring case,
  as the options are): refused.

- two segments with the same layer and label value (Slicer never writes that): refused.

To stay cheap on large volumes (two reductions per layer, no pass per label), values are found through
the maxima of the voxel columns (along j, per slice k and row i): a value that is a column maximum is
present; a segment value that is none is looked for only in the columns whose maximum is larger. Values no
segment has are found when they are a column maximum somewhere (always, unless every voxel of the value
lies under a larger value of the same column).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import InputError


def check_segment_fields(segments: Sequence[dict], layers: Sequence[np.ndarray], source: str) -> list[str]:
    """Refuse a header that contradicts its voxels (see the module docstring); return warnings."""
    _require_unique_ids(segments, source)
    shape_ijk = tuple(layers[0].shape[::-1]) if layers else (0, 0, 0)
    missing, orphans = [], []
    for index, layer in enumerate(layers):
        members = [info for info in segments if int(info.get("layer", 0)) == index]
        values = [int(info.get("labelValue", 1)) for info in members]
        column_maxima, box = _layer_summary(layer)
        seen = set(np.unique(column_maxima).tolist()) - {0}
        missing += [f"'{info.get('name', info.get('id'))}' (value {value}, layer {index})"
                    for info, value in zip(members, values) if not _present(layer, column_maxima, seen, value)]
        orphans += [f"value {value} (layer {index})" for value in sorted(seen - set(values))]
        extents = [_extent(info, shape_ijk, source) for info in members]
        if box is not None and members and all(extent is not None for extent in extents):
            _require_inside_extents(box, [extent for extent in extents if extent[0] is not None], index, source)
    if orphans and missing:
        raise InputError(f"The segment fields of '{source}' do not match its voxels: segment {', '.join(missing)} "
                         f"has no voxels, while voxels of {', '.join(orphans)} belong to no segment. A label value "
                         f"or layer in the header was changed or damaged; re-save the segmentation from Slicer.")
    if orphans:
        return [f"'{source}' has voxels of {', '.join(orphans)} that no segment lists; they are not counted. "
                f"Open the file in Slicer to check."]
    return []


def _require_unique_ids(segments: Sequence[dict], source: str) -> None:
    places = Counter((int(info.get("layer", 0)), int(info.get("labelValue", 1))) for info in segments)
    shared = [f"layer {layer}, value {value}" for (layer, value), count in places.items() if count > 1]
    if shared:
        raise InputError(f"'{source}' has several segments stored in the same place ({'; '.join(shared)}), so their "
                         f"voxels cannot be told apart. The header is damaged; re-save the segmentation from Slicer.")
    counts = Counter(str(info.get("id", "")).strip().lower() for info in segments)
    repeated = sorted(identifier for identifier, count in counts.items() if count > 1)
    if repeated:
        names = [str(info.get("id")) for info in segments if str(info.get("id", "")).strip().lower() in repeated]
        raise InputError(f"'{source}' has several segments with the same ID ({', '.join(names)}); options that name "
                         f"a segment would act on all of them. Give each segment its own ID (e.g. re-save from "
                         f"Slicer after renaming) and try again.")


def _layer_summary(layer: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """(maxima of the j columns, indexed [k, i]; (lowest i j k, highest i j k) of the non-zero voxels or None)."""
    column_maxima = layer.max(axis=1)
    if not column_maxima.any():
        return column_maxima, None
    k = np.flatnonzero(column_maxima.max(axis=1))
    i = np.flatnonzero(column_maxima.max(axis=0))
    j = np.flatnonzero(layer.max(axis=0).max(axis=1))
    return column_maxima, (np.array([i[0], j[0], k[0]]), np.array([i[-1], j[-1], k[-1]]))


def _present(layer: np.ndarray, column_maxima: np.ndarray, seen: set, value: int) -> bool:
    if value in seen:
        return True
    k, i = np.nonzero(column_maxima > value)  # the value can only hide under a larger one
    return bool(k.size) and bool(np.any(layer[k, :, i] == value))


def _extent(info: dict, shape_ijk: Sequence[int], source: str):
    """(low, high) i j k of a segment's Extent; (None, None) when empty; None when the file gives none."""
    extent = info.get("extent")
    if extent is None or len(extent) != 6:
        return None
    bounds = [int(bound) for bound in extent]
    low, high = np.array(bounds[0::2]), np.array(bounds[1::2])
    if np.any(low > high):
        return None, None
    if np.any(low < 0) or np.any(high >= np.asarray(shape_ijk)):
        raise InputError(f"The segment fields of '{source}' do not match its size: segment "
                         f"'{info.get('name', info.get('id'))}' has the Extent {' '.join(map(str, bounds))}, outside "
                         f"the volume of {' x '.join(map(str, shape_ijk))} voxels (i j k). Its 'sizes' field or the "
                         f"extent was changed or damaged; re-save it from Slicer.")
    return low, high


def _require_inside_extents(box, extents: list, layer: int, source: str) -> None:
    if not extents:
        raise InputError(f"The segment fields of '{source}' do not match its voxels: layer {layer} holds voxels but "
                         f"all its segments have an empty Extent. The header is damaged; re-save it from Slicer.")
    low = np.min([extent[0] for extent in extents], axis=0)
    high = np.max([extent[1] for extent in extents], axis=0)
    if np.any(box[0] < low) or np.any(box[1] > high):
        raise InputError(f"The segment fields of '{source}' do not match its voxels: layer {layer} has voxels outside "
                         f"the Extent of its segments. Its 'sizes' field or the voxels were changed or damaged; "
                         f"re-save it from Slicer.")
