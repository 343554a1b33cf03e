"""Segment roles from DICOM coded properties (SEG segment property codes, RTSTRUCT ROI types).

A DICOM SEG says what each segment is with codes (DICOM PS3.16 CID 7150/7151, SNOMED CT): these decide the
role before any name is looked at, so a segment coded as the liver is never counted as tumour whatever its
label. One small function per source, so the name-based rules (``segments.py``) can be merged with it.
"""

from __future__ import annotations

from ..formats.segments import LIVER_NAME, ROLE_EXCLUDED, ROLE_LESION, ROLE_LIVER

# SNOMED CT (SCT) codes and their legacy SNOMED RT (SRT) forms.
LIVER_CODES = {("SCT", "10200004"), ("SRT", "T-62000"), ("SCT", "39607008")}  # Liver; 39607008: liver structure
LESION_TYPE_CODES = {
    ("SCT", "108369006"), ("SRT", "M-80000"),  # Neoplasm (tumour)
    ("SCT", "14799000"), ("SRT", "M-80006"),  # Neoplasm, metastatic
    ("SCT", "94381002"),  # Secondary malignant neoplasm of liver
    ("SCT", "93870000"),  # Malignant neoplasm of liver
    ("SCT", "86049000"), ("SRT", "M-80003"),  # Malignant neoplasm, primary
    ("SCT", "363346000"),  # Malignant neoplastic disease
    ("SCT", "4147007"), ("SRT", "M-03000"),  # Mass
    ("SCT", "52988006"), ("SRT", "M-01000"),  # Lesion
    ("SCT", "27925004"),  # Nodule
}
NOT_LESION_TYPE_CODES = {("SCT", "441457006"), ("SRT", "M-33400")}  # Cyst
ANATOMY_CATEGORY_CODES = {("SCT", "123037004"), ("SRT", "T-D000A"),  # Anatomical Structure
                          ("SCT", "91723000"),  # Anatomical structure (older)
                          ("SCT", "85756007"), ("SRT", "T-D0050"),  # Tissue
                          ("SCT", "260787004"), ("SRT", "A-00004")}  # Physical object (catheters, markers)
RT_LESION_TYPES = {"GTV"}  # gross tumour volume: the visible tumour
RT_NOT_LESION_TYPES = {"ORGAN", "EXTERNAL", "PTV", "CTV", "AVOIDANCE", "CAVITY", "MARKER", "ISOCENTER",
                       "REGISTRATION", "CONTROL", "SUPPORT", "FIXATION", "DOSE_REGION", "BOLUS", "CONTRAST_AGENT",
                       "BRACHY_CHANNEL", "BRACHY_ACCESSORY", "BRACHY_SRC_APP", "BRACHY_CHNL_SHLD", "TREATED_VOLUME",
                       "IRRAD_VOLUME"}


def _key(code) -> tuple[str, str] | None:
    """(scheme, value) of a pydicom code item, or None when absent."""
    if code is None:
        return None
    return str(code.get("CodingSchemeDesignator", "")).strip().upper(), str(code.get("CodeValue", "")).strip()


def describe_code(code) -> str:
    """'SCT 10200004 (Liver)' for a tag a person can read."""
    return f"{code.get('CodingSchemeDesignator', '')} {code.get('CodeValue', '')} ({code.get('CodeMeaning', '')})"


def role_from_property_codes(category, kind) -> str | None:
    """Role of a segment from its Segmented Property Category and Type codes; None when they do not say.

    Liver -> liver; neoplasm, metastasis, mass, lesion, nodule -> lesion; a cyst or any other anatomical
    structure, tissue or object -> excluded (not a lesion); anything else is left to names and options.
    """
    kind_key, category_key = _key(kind), _key(category)
    if kind_key in LIVER_CODES:
        return ROLE_LIVER
    if kind_key in LESION_TYPE_CODES:
        return ROLE_LESION
    if kind_key in NOT_LESION_TYPE_CODES or category_key in ANATOMY_CATEGORY_CODES:
        return ROLE_EXCLUDED
    return None


def role_from_rt_roi(interpreted_type: str, name: str) -> str | None:
    """Role of an RTSTRUCT ROI from its RT ROI Interpreted Type (and a liver name for an ORGAN)."""
    kind = (interpreted_type or "").strip().upper()
    if kind == "ORGAN" and LIVER_NAME.match(name or ""):
        return ROLE_LIVER
    if kind in RT_LESION_TYPES:
        return ROLE_LESION
    if kind in RT_NOT_LESION_TYPES:
        return ROLE_EXCLUDED
    return None
