"""Segments of a segmentation and the role each plays (lesion, liver, excluded).

A :class:`LabelVolume` holds what a Slicer segmentation holds: one or more label layers on one voxel grid
(overlapping segments live in different layers) and, per segment, its layer and label value. Files,
MRML nodes and synthetic test data all become this one type, so every path measures the same way.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..geometry import Geometry
from .roles import (
    ROLE_EXCLUDED,
    ROLE_LESION,
    ROLE_LIVER,
    ROLE_OTHER,
    ROLES,
    RoleHint,
    coded_property_of,
    role_from_coded_property,
    role_from_name,
)

__all__ = [
    "LESION_OPTION_REASON",
    "ROLES",
    "ROLE_EXCLUDED",
    "ROLE_LESION",
    "ROLE_LIVER",
    "ROLE_OTHER",
    "ROLE_TAG",
    "VERIFIED_TAG",
    "LabelVolume",
    "Segment",
    "assign_roles",
    "names_matching",
    "patterns_matching",
    "require_patterns_match",
    "require_segments_named",
    "role_hint",
    "with_roles",
]

# Segment tags written by this module (Slicer stores tags in the scene and in .seg.nrrd files).
ROLE_TAG = "TTVPrognosis.Role"
VERIFIED_TAG = "TTVPrognosis.Verified"
# The reason given to segments the user named with --lesion-segment: the user's word, so the organ-size and
# enclosure refusals (measure/role_checks.py) do not apply to them.
LESION_OPTION_REASON = "named by --lesion-segment"
DEFAULT_LESION_REASON = "not recognised as liver or anatomy: counted as a lesion"


@dataclass
class Segment:
    """One segment: where its voxels are stored (layer, label value) and what it is."""

    segment_id: str
    name: str
    layer: int
    label_value: int
    tags: dict[str, str] = field(default_factory=dict)
    role: str = ROLE_LESION
    role_reason: str = ""  # why it has its role (option, tag, code, name), for messages
    # What its Slicer file says of the segment beyond the above (colour, terminology...): not used here,
    # written back unchanged so that adding a lesion to a file loses nothing of what is there.
    file_fields: dict = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return self.tags.get(VERIFIED_TAG, "").strip().lower() in ("1", "true", "yes")


@dataclass
class LabelVolume:
    """Label layers (integer arrays indexed [k, j, i]) on one grid, and the segments stored in them."""

    layers: list[np.ndarray]
    geometry: Geometry
    segments: list[Segment]
    source: str = ""
    warnings: list[str] = field(default_factory=list)  # noticed while reading, e.g. float labels
    file_fields: dict = field(default_factory=dict)  # the Slicer file's own fields (conversion parameters...)

    def __post_init__(self) -> None:
        for index, layer in enumerate(self.layers):
            if layer.shape != self.geometry.shape_kji:
                raise InputError(f"Label layer {index} of {self.source or 'the segmentation'} has shape "
                                 f"{layer.shape}, but its geometry says {self.geometry.shape_kji}.")
            if not np.issubdtype(layer.dtype, np.integer) and layer.dtype != bool:
                raise InputError(f"Label layer {index} of {self.source or 'the segmentation'} holds "
                                 f"{layer.dtype} values; label layers must hold integers.")
        for segment in self.segments:
            if not 0 <= segment.layer < len(self.layers):
                raise InputError(f"Segment '{segment.name}' refers to layer {segment.layer}, but "
                                 f"{self.source or 'the segmentation'} has {len(self.layers)} layer(s).")
            if segment.label_value <= 0:  # 0 is the background: such a segment would be every empty voxel
                raise InputError(f"Segment '{segment.name}' of {self.source or 'the segmentation'} has label value "
                                 f"{segment.label_value}; segments need a value above 0. The file may be damaged; "
                                 f"re-save it from Slicer.")

    def segments_with_role(self, role: str) -> list[Segment]:
        return [segment for segment in self.segments if segment.role == role]

    def mask(self, segments: Iterable[Segment]) -> np.ndarray:
        """Boolean union of the given segments (full grid). Overlaps count once."""
        union = np.zeros(self.geometry.shape_kji, dtype=bool)
        by_layer: dict[int, list[int]] = {}
        for segment in segments:
            by_layer.setdefault(segment.layer, []).append(segment.label_value)
        for layer_index, values in by_layer.items():
            union |= np.isin(self.layers[layer_index], values)
        return union


def _matches(segment: Segment, names: Sequence[str], shared_values: set[str]) -> bool:
    """A user names a segment by its name, its ID or (for label images) its label value. A label value
    names a segment only when no other segment has it (``shared_values``, from :func:`_shared_label_values`):
    in a Slicer file every layer may use value 1."""
    wanted = {name.strip().lower() for name in names}
    keys = {segment.name.lower(), segment.segment_id.lower()}
    if str(segment.label_value) not in shared_values:
        keys.add(str(segment.label_value))
    return bool(keys & wanted)


def _shared_label_values(volume: LabelVolume) -> set[str]:
    """Label values (as text) that more than one segment of ``volume`` has (segments of different layers)."""
    counts = Counter(str(segment.label_value) for segment in volume.segments)
    return {value for value, count in counts.items() if count > 1}


def names_matching(volume: LabelVolume, names: Sequence[str]) -> list[str]:
    """The subset of ``names`` that name a segment of ``volume``."""
    shared = _shared_label_values(volume)
    return [name for name in names if any(_matches(segment, [name], shared) for segment in volume.segments)]


def require_segments_named(volumes: Sequence[LabelVolume], names: Sequence[str], option: str) -> None:
    """Each name must match a segment in at least one of ``volumes``: a typo must not change the TTV silently."""
    for name in names:
        for volume in volumes:
            if name.strip() in _shared_label_values(volume) and not names_matching(volume, [name]):
                sharing = [segment.name for segment in volume.segments if str(segment.label_value) == name.strip()]
                raise InputError(f"{option} '{name}': label value {name.strip()} belongs to several segments of "
                                 f"{volume.source or 'the input'} ({', '.join(sharing)}), one per layer; name the "
                                 f"segment instead.")
        if not any(names_matching(volume, [name]) for volume in volumes):
            available = sorted({f"'{segment.name}'" for volume in volumes for segment in volume.segments})
            sources = " or ".join(volume.source or "the input" for volume in volumes)
            raise InputError(f"{option} '{name}' matches no segment of {sources}. Segments there: "
                             f"{', '.join(available) or 'none'}.")


def patterns_matching(volume: LabelVolume, patterns: Sequence[str]) -> list[str]:
    """The subset of ``patterns`` (names, IDs, label values or glob patterns) that match a segment of ``volume``."""
    shared = _shared_label_values(volume)
    return [pattern for pattern in patterns if any(_matches_pattern(segment, [pattern], shared)
                                                   for segment in volume.segments)]


def require_patterns_match(volumes: Sequence[LabelVolume], patterns: Sequence[str], option: str) -> None:
    """Each pattern must match a segment in at least one of ``volumes`` (a typo must not empty the TTV)."""
    for pattern in patterns:
        if not any(patterns_matching(volume, [pattern]) for volume in volumes):
            available = sorted({f"'{segment.name}'" for volume in volumes for segment in volume.segments})
            sources = " or ".join(volume.source or "the input" for volume in volumes)
            raise InputError(f"{option} '{pattern}' matches no segment of {sources}. Segments there: "
                             f"{', '.join(available) or 'none'}.")


def _matches_pattern(segment: Segment, patterns: Sequence[str], shared_values: set[str]) -> bool:
    """Like :func:`_matches`, with shell-style wildcards (``Tumour*``, ``livertumor0?``), ignoring case."""
    keys = [segment.name.lower(), segment.segment_id.lower()]
    if str(segment.label_value) not in shared_values:
        keys.append(str(segment.label_value))
    return any(fnmatch.fnmatchcase(key, pattern.strip().lower()) for pattern in patterns for key in keys)


def role_hint(segment: Segment) -> RoleHint | None:
    """The role a segment's own data give it: this module's role tag, else its coded property and its name
    (which must not contradict each other), else None."""
    tagged = segment.tags.get(ROLE_TAG, "").strip().lower()
    if tagged in ROLES:
        return RoleHint(tagged, f"tagged '{tagged}' ({ROLE_TAG})")
    coded = coded_property_of(segment.file_fields)
    from_code = role_from_coded_property(*coded) if coded is not None else None
    from_name = role_from_name(segment.name)
    if from_code is not None and from_name is not None and from_code.role != from_name.role:
        raise InputError(f"Segment '{segment.name}' is {from_code.reason} but its name reads as {from_name.reason}; "
                         f"say which it is: --lesion-segment '{segment.name}' (a lesion), --liver-segment "
                         f"'{segment.name}' (liver) or --exclude-segment '{segment.name}' (neither).")
    return from_code or from_name


def assign_roles(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = (),
                 lesion: Sequence[str] = ()) -> list[str]:
    """Decide each segment's role in place and return warnings about what was decided.

    Order of precedence: the user's ``exclude`` and ``liver`` lists, then ``lesion`` (names or glob patterns:
    only these are lesions, everything else is left out or, if it is the liver, kept as liver), then the
    module's role tag, the segment's coded property and its name (``formats/roles.py``); a segment none of these
    decides is a lesion (checked for size and enclosure when measured). Names in ``exclude``/``liver`` that
    match no segment are an error: a typo must not silently change the TTV. ``lesion`` patterns are checked by
    the callers (a follow-up may have no lesion left).
    """
    require_segments_named([volume], exclude, "--exclude-segment")
    require_segments_named([volume], liver, "--liver-segment")
    patterns = [pattern for pattern in lesion if pattern.strip()]
    shared = _shared_label_values(volume)
    not_lesions = []
    for segment in volume.segments:
        if _matches(segment, exclude, shared):
            segment.role, segment.role_reason = ROLE_EXCLUDED, "named by --exclude-segment"
        elif _matches(segment, liver, shared):
            segment.role, segment.role_reason = ROLE_LIVER, "named by --liver-segment"
        elif patterns and _matches_pattern(segment, patterns, shared):
            segment.role, segment.role_reason = ROLE_LESION, LESION_OPTION_REASON
        else:
            hint = role_hint(segment)
            if patterns:
                liver_part = hint is not None and hint.role == ROLE_LIVER
                segment.role = ROLE_LIVER if liver_part else ROLE_EXCLUDED
                segment.role_reason = hint.reason if liver_part else "not named by --lesion-segment"
            elif hint is not None:
                segment.role, segment.role_reason = hint.role, hint.reason
            else:
                segment.role, segment.role_reason = ROLE_LESION, DEFAULT_LESION_REASON
        if segment.role == ROLE_OTHER:
            not_lesions.append(segment.name)
    warnings = []
    if not_lesions:
        shown = ", ".join(f"'{name}'" for name in not_lesions[:12]) + (
            f" and {len(not_lesions) - 12} more" if len(not_lesions) > 12 else "")
        warnings.append(f"Not counted as lesions (named or coded as anatomy, or as findings that are not liver "
                        f"metastases): {shown}. To count one, name the lesions: --lesion-segment NAME (repeat; "
                        f"wildcards allowed).")
    return warnings


def with_roles(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = (),
               lesion: Sequence[str] = ()) -> tuple[LabelVolume, list[str]]:
    """Copy of ``volume`` (sharing the voxel arrays) with roles assigned, so callers' objects stay as given."""
    copy = replace(volume, segments=[replace(segment, tags=dict(segment.tags)) for segment in volume.segments])
    warnings = assign_roles(copy, exclude=exclude, liver=liver, lesion=lesion)
    return copy, warnings
