"""What a segment is, from its name or its coded property: liver, lesion, or something that is never a lesion.

A liver (or any other organ) must never be counted as tumour because of its name's spelling: "Liver mask",
"Leber", "Foie", "Higado" (with or without its accent), "segment IVa" and "portal vein" are all recognised
here. The rules, in order:

1. Words that mean "not a metastasis" although they look like one: resection sites ("metastasectomie"),
   negations ("non-tumour liver"), then lesion words with an organ other than the liver ("lung nodules",
   "kidney tumour", "bone metastasis": extrahepatic lesions are not part of the liver TTV) -> other.
2. Lesion words (tumour, metastasis, lesion, nodule, cancer, mass, GTV... in several languages) -> lesion.
3. Anatomy other than the liver (vessels, organs, bone, skin, body, fat, muscle) and benign findings (cysts,
   haemangiomas, FNH, stones) -> other: never a lesion.
4. The liver in the usual forms and languages, its parts (lobes, parenchyma, remnant) and Couinaud segments
   ("segment 4a", "S2", "Couinaud VIII", "liver_segment_5") -> liver: the Couinaud segments are parts of the
   liver, so their union is the liver volume and none of them is ever a lesion.
5. Anything else (e.g. Slicer's default "Segment_1", "Label 2") -> unknown: a lesion by default, checked by
   size and enclosure before it is counted (``measure/role_checks.py``).

"Segment 1" ... "Segment 8" without a letter or Roman numeral is *not* read as a Couinaud segment: it is the
name Slicer gives every new segment.

Coded properties (DICOM SEG ``SegmentedPropertyCategory/TypeCodeSequence``, Slicer's terminology tag) are
decided by :func:`role_from_coded_property`; the code tables are below it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

ROLE_LESION = "lesion"
ROLE_LIVER = "liver"
ROLE_EXCLUDED = "excluded"  # left out by the user's options
ROLE_OTHER = "other"  # recognised as anatomy or a finding that is not a metastasis: never a lesion
ROLES = (ROLE_LESION, ROLE_LIVER, ROLE_EXCLUDED, ROLE_OTHER)

# Stems are matched inside the name's letters run together ("livertumor01" -> "livertumor"), so they are
# long enough not to occur by chance; tokens are matched as whole words.
LESION_STEMS = ("tumor", "tumour", "tumeur", "tumore", "metasta", "lesion", "lasion", "laesion", "laesie",
                "neoplas", "cancer", "carcinom", "karzinom", "malign", "crlm", "nodul", "knoten", "herd",
                "raumforderung", "przerzut")
LESION_TOKENS = {"met", "mets", "gtv", "hcc", "mass", "masse", "tu", "ca", "haard", "guz"}
NOT_A_LESION_STEMS = ("ectom", "resect", "resekt")  # "metastasectomie" is where a metastasis was removed
NEGATION = re.compile(r"\b(non|no|not|without|ohne|sans|sin|excl[a-z]*)\s*(tumou?r|lesion|metast|neoplas)")
# Organs other than the liver: a lesion named after one is extrahepatic (not in the liver TTV).
EXTRAHEPATIC_STEMS = ("lung", "pulmo", "poumon", "kidney", "niere", "renal", "nephr", "bone", "knochen",
                      "osseous", "vertebr", "spine", "brain", "cerebr", "adrenal", "surrenal", "lymph",
                      "peritone", "spleen", "milz", "splen", "pancrea", "pankrea", "colon", "kolon", "rectum",
                      "rektum", "bowel", "intestin", "stomach", "magen", "gastr", "breast", "mamma", "ovar",
                      "prostat", "bladder", "blase", "skin", "thyro", "esophag", "oesophag")
EXTRAHEPATIC_TOKENS = {"rib", "ribs", "node", "nodes", "ln"}
ANATOMY_STEMS = (
    *EXTRAHEPATIC_STEMS,
    # vessels
    "vessel", "vein", "vena", "venous", "vene", "veine", "cava", "portal", "pfortader", "artery", "arteri",
    "aorta", "aorte", "vascul", "carotid", "jugular", "subclavian", "brachiocephal", "iliac", "coronar",
    "trunk", "sinus",
    # heart, chest, airways
    "heart", "herz", "coeur", "cardi", "myocard", "atrium", "atrial", "ventric", "trachea", "bronch",
    "airway", "pleura", "diaphragm", "zwerchfell",
    # abdomen and pelvis
    "gallbladder", "gallenblase", "vesicul", "bile", "biliar", "galle", "duct", "choledoch", "duoden",
    "jejun", "ileum", "caecum", "cecum", "sigmoid", "uterus", "urinary", "ureter",
    # bone, muscle, body
    "skelet", "wirbel", "costa", "stern", "femur", "humer", "scapul", "clavic", "pelvi", "becken", "sacr",
    "coccy", "skull", "tibia", "fibula", "patella", "carpal", "tarsal", "phalang", "spinal", "cord",
    "muscle", "muskel", "psoas", "glute", "autochthon", "adipos", "subcutan", "body", "koerper", "korper",
    "haut", "peau", "outside", "external", "metal", "implant", "eyeball",
    # benign findings, not metastases
    "cyst", "kyst", "zyste", "quiste", "cisti", "hemangiom", "haemangiom", "hamangiom", "angiom",
    "hyperplas", "adenom", "absces", "abszess", "biloma", "calcif", "verkalk", "stone", "calcul", "lithias",
)
ANATOMY_TOKENS = EXTRAHEPATIC_TOKENS | {"ivc", "svc", "pv", "hv", "fat", "fett", "hip", "eye", "air",
                                        "background", "fnh", "bg", "ptv", "ctv", "itv", "radius", "ulna", "face"}
LIVER_STEMS = ("liver", "lever", "leber", "foie", "higado", "fegato", "figado", "hepar", "hepat", "parenchym",
               "watroba", "couinaud")
LIVER_TOKENS = {"maksa", "jecur"}
_ROMAN = r"(?:i|ii|iii|iv|v|vi|vii|viii)"
COUINAUD = (
    re.compile(r"^(?:(?:liver|hepatic|leber|lever|foie)\s+)?s(?:eg)?\s*[1-8]\s*[ab]?$"),  # S2, S4a, seg 3, liver S8
    re.compile(rf"^(?:(?:liver|hepatic|leber|lever|foie)\s+)?seg(?:ment)?\s*{_ROMAN}\s*[ab]?$"),  # segment IVb
    re.compile(r"^(?:(?:liver|hepatic|leber|lever|foie)\s+)?seg(?:ment)?\s*[1-8]\s*[ab]$"),  # segment 4a
    re.compile(rf"^s\s*{_ROMAN}\s*[ab]?$"),  # SVIII, S IVa
)


@dataclass(frozen=True)
class RoleHint:
    """A role read from a name or a code, and what it was read as (said in messages)."""

    role: str
    reason: str


def normalised_name(name: str) -> str:
    """Lower case, accents removed, words and numbers separated by single spaces ("Higado_4a" -> "higado 4 a")."""
    text = unicodedata.normalize("NFKD", name.replace("\u00df", "ss"))
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower()  # camelCase: "PortalVein" -> "portal vein"
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


def _has(letters: str, tokens: set[str], stems: tuple[str, ...], token_set: set[str]) -> bool:
    return any(stem in letters for stem in stems) or bool(tokens & token_set)


def role_from_name(name: str) -> RoleHint | None:
    """The role a segment's name gives it, or None when the name does not say (see the module docstring)."""
    text = normalised_name(name)
    if not text:
        return None
    tokens = set(text.split())
    letters = "".join(re.findall(r"[a-z]+", text))
    negated = bool(NEGATION.search(text))
    lesion_word = not negated and _has(letters, tokens, LESION_STEMS, LESION_TOKENS)
    liver_word = _has(letters, tokens, LIVER_STEMS, LIVER_TOKENS)
    if any(stem in letters for stem in NOT_A_LESION_STEMS):
        return RoleHint(ROLE_OTHER, "a resection site, not a lesion")
    if lesion_word and not liver_word and _has(letters, tokens, EXTRAHEPATIC_STEMS, EXTRAHEPATIC_TOKENS):
        return RoleHint(ROLE_OTHER, "a lesion outside the liver (not part of the liver TTV)")
    if lesion_word:
        return RoleHint(ROLE_LESION, "a lesion")
    if _has(letters, tokens, ANATOMY_STEMS, ANATOMY_TOKENS):
        return RoleHint(ROLE_OTHER, "anatomy or a finding that is not a metastasis")
    if any(pattern.match(text) for pattern in COUINAUD):
        return RoleHint(ROLE_LIVER, "a Couinaud segment of the liver")
    if liver_word:
        return RoleHint(ROLE_LIVER, "the liver")
    return None


# --- coded properties (DICOM SEG SegmentedPropertyCategory/Type, Slicer terminology) -------------------
# SNOMED CT ("SCT") concept ids, with the retired SNOMED-RT ("SRT") codes older files carry. Sources: DICOM
# PS3.16 CID 7150 (segmentation property categories), CID 7151/7166 (property types), SNOMED CT browser.
SNOMED_SCHEMES = ("SCT", "SRT", "SNM3", "99SDM")
LIVER_TYPE_CODES = {
    "10200004": "Liver", "T-62000": "Liver (SNOMED-RT)",
    "72481006": "Right lobe of liver", "4113009": "Left lobe of liver", "41801008": "Caudate lobe of liver",
}
LESION_TYPE_CODES = {
    "108369006": "Neoplasm", "M-80003": "Neoplasm (SNOMED-RT)", "14799000": "Neoplasm, metastatic",
    "M-80006": "Neoplasm, metastatic (SNOMED-RT)", "94381002": "Secondary malignant neoplasm of liver",
    "86049000": "Malignant neoplasm, primary", "4147007": "Mass", "M-03000": "Mass (SNOMED-RT)",
    "52988006": "Lesion", "M-01100": "Lesion (SNOMED-RT)", "27925004": "Nodule", "M-03010": "Nodule (SNOMED-RT)",
    "363358000": "Malignant tumor of liver", "93870000": "Malignant neoplasm of liver",
}
NOT_METASTASIS_TYPE_CODES = {"367643001": "Cyst", "M-33400": "Cyst (SNOMED-RT)", "400210000": "Hemangioma",
                             "6081001": "Necrosis", "M-54000": "Necrosis (SNOMED-RT)", "56381008": "Calculus",
                             "18115005": "Pathologic calcification"}
ANATOMY_CATEGORY_CODES = {"123037004": "Anatomical Structure", "91723000": "Anatomical Structure",
                          "T-D000A": "Anatomical Structure (SNOMED-RT)", "260787004": "Physical object",
                          "A-00004": "Physical object (SNOMED-RT)"}
# Not decisive on their own: "Tissue" (Slicer's default for every new segment) and "Morphologically Altered
# Structure" (lesions, but also necrosis, oedema...): their type or the name decides.
UNDECIDED_CATEGORY_CODES = {"85756007": "Tissue", "T-D0050": "Tissue (SNOMED-RT)",
                            "49755003": "Morphologically Altered Structure",
                            "M-01000": "Morphologically Altered Structure (SNOMED-RT)"}


@dataclass(frozen=True)
class Code:
    """One coded concept: scheme designator (SCT, SRT, DCM...), code value, meaning."""

    scheme: str
    value: str
    meaning: str = ""


def as_code(code: Any) -> Code | None:
    """A code from what readers hold: ``Code``, pydicom/highdicom ``Code`` (``value``, ``scheme_designator``,
    ``meaning``), a Slicer terminology list ``[scheme, value, meaning]``, or text ``"SCT^10200004^Liver"``."""
    if code is None:
        return None
    if isinstance(code, Code):
        return code
    if isinstance(code, str):
        code = code.split("^")
    if isinstance(code, (list, tuple)):
        parts = [str(part).strip() for part in code] + ["", "", ""]
        return Code(parts[0].upper(), parts[1], parts[2]) if parts[1] else None
    value = getattr(code, "value", None) or getattr(code, "CodeValue", None)
    if not value:
        return None
    scheme = getattr(code, "scheme_designator", None) or getattr(code, "CodingSchemeDesignator", "") or ""
    meaning = getattr(code, "meaning", None) or getattr(code, "CodeMeaning", "") or ""
    return Code(str(scheme).upper(), str(value).strip(), str(meaning))


def role_from_coded_property(category_code: Any, type_code: Any) -> RoleHint | None:
    """The role a segment's coded category and type give it, or None when they do not decide it.

    For the DICOM SEG reader and Slicer's terminology tag. Liver codes (SCT 10200004 Liver, its lobes) ->
    liver; neoplasm, metastasis, mass, lesion, nodule -> lesion; cyst, haemangioma, necrosis, calculus ->
    other; any other type in an anatomical-structure or physical-object category -> other (anatomy is never a
    lesion; a liver part known only by its meaning, e.g. a Couinaud segment, is read from the meaning). Slicer's
    default "Tissue" and unknown types in "Morphologically Altered Structure" -> None (the name decides).
    """
    category, kind = as_code(category_code), as_code(type_code)
    if kind is not None and kind.scheme in SNOMED_SCHEMES:
        if kind.value in LIVER_TYPE_CODES:
            return RoleHint(ROLE_LIVER, f"coded as {LIVER_TYPE_CODES[kind.value]}")
        if kind.value in LESION_TYPE_CODES:
            return RoleHint(ROLE_LESION, f"coded as {LESION_TYPE_CODES[kind.value]}")
        if kind.value in NOT_METASTASIS_TYPE_CODES:
            return RoleHint(ROLE_OTHER, f"coded as {NOT_METASTASIS_TYPE_CODES[kind.value]}")
    if category is None or category.scheme not in SNOMED_SCHEMES:
        return None
    if category.value in ANATOMY_CATEGORY_CODES:
        from_meaning = role_from_name(kind.meaning) if kind is not None else None
        meaning = kind.meaning if kind is not None and kind.meaning else "an unnamed type"
        if from_meaning is not None and from_meaning.role == ROLE_LIVER:
            return RoleHint(ROLE_LIVER, f"coded as {meaning} (part of the liver)")
        return RoleHint(ROLE_OTHER, f"coded as {ANATOMY_CATEGORY_CODES[category.value]}: {meaning}")
    return None


def coded_property_of(file_fields: dict) -> tuple[Any, Any] | None:
    """(category, type) codes from a segment's file fields: Slicer's parsed terminology (``terminology`` with
    ``category``/``type`` lists, as slicerio reads ``.seg.nrrd`` files), or ``coded_property`` as readers of
    DICOM SEG may store it (``{"category": code, "type": code}``)."""
    for key in ("coded_property", "terminology"):
        entry = file_fields.get(key)
        if isinstance(entry, dict) and entry.get("type") is not None:
            return entry.get("category"), entry.get("type")
    return None


TERMINOLOGY_TAG = "TerminologyEntry"  # the tag under which Slicer keeps a segment's terminology


def terminology_from_entry(text: str) -> dict | None:
    """Slicer's terminology tag text ("context~SCT^85756007^Tissue~SCT^85756007^Tissue~..."), as the dict slicerio
    reads from ``.seg.nrrd`` files (``contextName``, ``category``, ``type``... as [scheme, value, meaning]); None
    when it holds no type code."""
    parts = (text or "").split("~")
    if len(parts) < 3 or not parts[2].strip("^ "):
        return None
    keys = ("contextName", "category", "type", "typeModifier", "anatomicContextName", "anatomicRegion",
            "anatomicRegionModifier")
    entry: dict = {}
    for key, part in zip(keys, parts):
        if key.endswith("Name"):
            if part:
                entry[key] = part
        elif part.strip("^ ") or key in ("category", "type"):
            entry[key] = part.split("^")
    return entry
