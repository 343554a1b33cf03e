"""Segment roles from DICOM coded properties (SEG segment property codes, RTSTRUCT ROI types).

A DICOM SEG says what each segment is with codes (DICOM PS3.16 CID 7150/7151, SNOMED CT): these decide the
role before any name is looked at, so a segment coded as the liver is never counted as tumour whatever its
label. The code tables live in :mod:`.roles`; this module reads them for SEG and RTSTRUCT items.
"""

from __future__ import annotations

from .roles import ROLE_LESION, ROLE_LIVER, ROLE_OTHER, role_from_coded_property, role_from_name

# RT ROI Interpreted Types (DICOM PS3.3 C.8.8.8): a GTV is the visible tumour; the others are never lesions.
RT_LESION_TYPES = {"GTV"}
RT_NOT_LESION_TYPES = {"ORGAN", "EXTERNAL", "PTV", "CTV", "AVOIDANCE", "CAVITY", "MARKER", "ISOCENTER",
                       "REGISTRATION", "CONTROL", "SUPPORT", "FIXATION", "DOSE_REGION", "BOLUS", "CONTRAST_AGENT",
                       "BRACHY_CHANNEL", "BRACHY_ACCESSORY", "BRACHY_SRC_APP", "BRACHY_CHNL_SHLD", "TREATED_VOLUME",
                       "IRRAD_VOLUME"}


def describe_code(code) -> str:
    """'SCT 10200004 (Liver)' for a tag a person can read."""
    return f"{code.get('CodingSchemeDesignator', '')} {code.get('CodeValue', '')} ({code.get('CodeMeaning', '')})"


def role_from_property_codes(category, kind) -> str | None:
    """Role of a segment from its Segmented Property Category and Type codes (pydicom code items); None when
    they do not say. The code tables are :func:`.roles.role_from_coded_property`'s: one decision for SEG
    files, Slicer terminology and RTSTRUCT observations alike."""
    hint = role_from_coded_property(category, kind)
    return None if hint is None else hint.role


def role_from_rt_roi(interpreted_type: str, name: str) -> str | None:
    """Role of an RTSTRUCT ROI from its RT ROI Interpreted Type (an ORGAN is the liver when named so)."""
    kind = (interpreted_type or "").strip().upper()
    if kind == "ORGAN":
        hint = role_from_name(name or "")
        return ROLE_LIVER if hint is not None and hint.role == ROLE_LIVER else ROLE_OTHER
    if kind in RT_LESION_TYPES:
        return ROLE_LESION
    if kind in RT_NOT_LESION_TYPES:
        return ROLE_OTHER
    return None
