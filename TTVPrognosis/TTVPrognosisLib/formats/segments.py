"""Segments of a segmentation and the role each plays (lesion, liver, excluded).

A :class:`LabelVolume` holds what a Slicer segmentation holds: one or more label layers on one voxel grid
(overlapping segments live in different layers) and, per segment, its layer and label value. Files,
MRML nodes and synthetic test data all become this one type, so every path measures the same way.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..geometry import Geometry

ROLE_LESION = "lesion"
ROLE_LIVER = "liver"
ROLE_EXCLUDED = "excluded"
ROLES = (ROLE_LESION, ROLE_LIVER, ROLE_EXCLUDED)

# Segment tags written by this module (Slicer stores tags in the scene and in .seg.nrrd files).
ROLE_TAG = "TTVPrognosis.Role"
VERIFIED_TAG = "TTVPrognosis.Verified"

# "Liver", "liver parenchyma", "Whole_liver", "Parenchyma", "liver 1" -- but not "livertumor01".
LIVER_NAME = re.compile(r"^\s*(whole[\s_-]*)?(liver|parenchyma|liver[\s_-]*parenchyma)([\s_-]*\d+)?\s*$",
                        re.IGNORECASE)
# Names that usually mean a structure other than a metastasis: counted (as DESIGN.md defines) but flagged.
NON_LESION_HINT = re.compile(r"(vein|vessel|arter|aorta|portal|cava|kidney|spleen|gallbladder|bladder|"
                             r"stomach|bone|lung|colon|bowel|pancrea|cyst|kyst|body|skin)", re.IGNORECASE)


@dataclass
class Segment:
    """One segment: where its voxels are stored (layer, label value) and what it is."""

    segment_id: str
    name: str
    layer: int
    label_value: int
    tags: dict[str, str] = field(default_factory=dict)
    role: str = ROLE_LESION
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


def assign_roles(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = ()) -> list[str]:
    """Decide each segment's role in place and return warnings about doubtful choices.

    Order of precedence: the user's ``exclude`` and ``liver`` lists, then the module's role tag, then a
    liver-like name (DESIGN.md: "liver", "parenchyma"), otherwise lesion. Names the user gave that match
    no segment are an error: a typo must not silently change the TTV.
    """
    require_segments_named([volume], exclude, "--exclude-segment")
    require_segments_named([volume], liver, "--liver-segment")
    warnings = []
    shared = _shared_label_values(volume)
    for segment in volume.segments:
        tagged_role = segment.tags.get(ROLE_TAG, "").strip().lower()
        if _matches(segment, exclude, shared):
            segment.role = ROLE_EXCLUDED
        elif _matches(segment, liver, shared):
            segment.role = ROLE_LIVER
        elif tagged_role in ROLES:
            segment.role = tagged_role
        elif LIVER_NAME.match(segment.name):
            segment.role = ROLE_LIVER
        else:
            segment.role = ROLE_LESION
        if segment.role == ROLE_LESION and NON_LESION_HINT.search(segment.name):
            warnings.append(f"Segment '{segment.name}' is counted as a lesion; if it is not a metastasis, "
                            f"exclude it (--exclude-segment '{segment.name}').")
    return warnings


def with_roles(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = ()
               ) -> tuple[LabelVolume, list[str]]:
    """Copy of ``volume`` (sharing the voxel arrays) with roles assigned, so callers' objects stay as given."""
    copy = replace(volume, segments=[replace(segment, tags=dict(segment.tags)) for segment in volume.segments])
    warnings = assign_roles(copy, exclude=exclude, liver=liver)
    return copy, warnings
