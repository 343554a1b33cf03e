"""Segment roles from names and coded properties: the liver is never a lesion because of its spelling."""

from __future__ import annotations

import numpy as np
import pytest

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.roles import Code, as_code, role_from_coded_property, role_from_name
from TTVPrognosisLib.formats.segments import LESION_OPTION_REASON, LabelVolume, Segment, assign_roles
from TTVPrognosisLib.geometry import Geometry

LIVER_NAMES = ["Liver", "liver", "Liver mask", "liver_mask", "LiverMask", "Liver segment", "liver remnant",
               "Future liver remnant", "Liver parenchyma", "Parenchyma", "whole_liver", "Lever", "Leber",
               "Foie", "Hígado", "Higado", "Fegato", "Fígado", "Leberparenchym", "non-tumour liver",
               "Liver without tumours", "Hepar", "segment 4a", "Segment IVb", "S2", "S4a", "Couinaud VIII",
               "liver_segment_5", "seg 8", "SVII", "Right lobe of liver"]
LESION_NAMES = ["livertumor01", "livertumor1", "Liver lesion 3", "Tumour", "Metastasis 2", "Metastase",
                "Lebermetastase", "Levermetastase", "Métastase hépatique", "CRLM 1", "Lesion_4", "liver_tumor",
                "liver_lesions", "GTV", "met 3", "Nodule", "Tumor in segment 4a", "cancer", "HCC", "Leberherd 2",
                "Leberrundherd", "Lésion hépatique", "metastasi epatica", "metástasis hepática", "levermetastase",
                "lever laesie", "Tumour near the portal vein"]
OTHER_NAMES = ["portalvein", "Portal vein", "hepatic vein", "Hepatic veins", "IVC", "inferior_vena_cava",
               "venoussystem", "venacava", "artery", "Hepatic artery", "aorta", "gallbladder", "Gallenblase",
               "spleen", "Milz", "leftkidney", "kidney_right", "bone", "skin", "Body", "leftlung", "lungs",
               "liverkyst", "Liver cyst", "Zyste", "hemangioma", "biliarysystem", "metastasectomie",
               "surrenalgland", "stomach", "pancreas", "colon", "duodenum", "heart", "vertebrae_L1",
               "rib_left_3", "liver_vessels", "lung_nodules", "Kidney tumour", "Bone metastasis",
               "Lymph node metastasis", "kidney_cyst_left", "Stones", "background", "subcutaneous_fat"]
UNKNOWN_NAMES = ["Segment_1", "Segment 3", "Label 2", "1", "ROI", "Region 5"]


@pytest.mark.parametrize("name", LIVER_NAMES)
def test_liver_names_in_usual_forms_and_languages(name):
    hint = role_from_name(name)
    assert hint is not None and hint.role == "liver", name


@pytest.mark.parametrize("name", LESION_NAMES)
def test_lesion_names(name):
    hint = role_from_name(name)
    assert hint is not None and hint.role == "lesion", name


@pytest.mark.parametrize("name", OTHER_NAMES)
def test_anatomy_and_findings_that_are_not_liver_metastases(name):
    hint = role_from_name(name)
    assert hint is not None and hint.role == "other", name


@pytest.mark.parametrize("name", UNKNOWN_NAMES)
def test_names_that_do_not_say_are_undecided(name):
    """Slicer's default "Segment_N" is not a Couinaud segment: every new segment in Slicer is named so."""
    assert role_from_name(name) is None


# TotalSegmentator v2 "total" task classes, written here from the list in its map_to_binary.py
# (github.com/wasserth/TotalSegmentator, totalsegmentator/map_to_binary.py, class_map["total"]).
TOTALSEGMENTATOR_TOTAL_TEXT = (
    "spleen kidney_right kidney_left gallbladder liver stomach pancreas adrenal_gland_right adrenal_gland_left "
    "lung_upper_lobe_left lung_lower_lobe_left lung_upper_lobe_right lung_middle_lobe_right lung_lower_lobe_right "
    "esophagus trachea thyroid_gland small_bowel duodenum colon urinary_bladder prostate kidney_cyst_left "
    "kidney_cyst_right sacrum vertebrae_S1 vertebrae_L5 vertebrae_L4 vertebrae_L3 vertebrae_L2 vertebrae_L1 "
    "vertebrae_T12 vertebrae_T1 vertebrae_C7 vertebrae_C1 heart aorta pulmonary_vein brachiocephalic_trunk "
    "subclavian_artery_right common_carotid_artery_left brachiocephalic_vein_left atrial_appendage_left "
    "superior_vena_cava inferior_vena_cava portal_vein_and_splenic_vein iliac_artery_left iliac_vena_right "
    "humerus_left scapula_right clavicula_left femur_right hip_left spinal_cord gluteus_maximus_left "
    "gluteus_medius_right gluteus_minimus_left autochthon_right iliopsoas_left brain skull rib_left_1 "
    "rib_right_12 sternum costal_cartilages")
TOTALSEGMENTATOR_TOTAL = TOTALSEGMENTATOR_TOTAL_TEXT.split()


@pytest.mark.parametrize("name", TOTALSEGMENTATOR_TOTAL)
def test_every_totalsegmentator_class_but_the_liver_is_other_anatomy(name):
    assert role_from_name(name).role == ("liver" if name == "liver" else "other")


@pytest.mark.parametrize("category, kind, role", [
    (("SCT", "123037004", "Anatomical Structure"), ("SCT", "10200004", "Liver"), "liver"),
    (("SCT", "91723000", "Anatomical Structure"), ("SCT", "10200004", "Liver"), "liver"),
    (("SRT", "T-D000A", "Anatomical Structure"), ("SRT", "T-62000", "Liver"), "liver"),
    (("SCT", "49755003", "Morphologically Altered Structure"), ("SCT", "108369006", "Neoplasm"), "lesion"),
    (("SCT", "49755003", "Morphologically Altered Structure"), ("SCT", "14799000", "Neoplasm, metastatic"), "lesion"),
    (("SCT", "49755003", "Morphologically Altered Structure"), ("SCT", "4147007", "Mass"), "lesion"),
    (("SCT", "123037004", "Anatomical Structure"), ("SCT", "32764006", "Portal vein"), "other"),
    (("SCT", "123037004", "Anatomical Structure"), ("SCT", "78961009", "Spleen"), "other"),
    (("SCT", "123037004", "Anatomical Structure"), ("SCT", "99999999", "Liver segment VIII"), "liver"),
    (("SCT", "49755003", "Morphologically Altered Structure"), ("SCT", "367643001", "Cyst"), "other"),
    (("SCT", "85756007", "Tissue"), ("SCT", "85756007", "Tissue"), None),  # Slicer's default: undecided
    (("SCT", "49755003", "Morphologically Altered Structure"), ("SCT", "11111111", "Something"), None),
    (("DCM", "1", "x"), ("DCM", "2", "y"), None),
])
def test_role_from_coded_property(category, kind, role):
    hint = role_from_coded_property(category, kind)
    assert (hint.role if hint else None) == role


def test_codes_are_read_from_the_forms_readers_hold():
    class PydicomLikeCode:  # pydicom.sr.coding.Code / highdicom codes have these attributes
        value, scheme_designator, meaning = "10200004", "SCT", "Liver"

    assert as_code(PydicomLikeCode()) == Code("SCT", "10200004", "Liver")
    assert as_code("SCT^10200004^Liver") == Code("SCT", "10200004", "Liver")
    assert as_code(["sct", "10200004"]) == Code("SCT", "10200004", "")
    assert as_code(None) is None and as_code(["SCT", "", ""]) is None


def _volume(*segments: Segment) -> LabelVolume:
    geometry = Geometry(np.eye(4), (4, 4, 4))
    labels = np.zeros((4, 4, 4), dtype=np.uint8)
    for index, segment in enumerate(segments):
        labels[index] = segment.label_value
    return LabelVolume([labels], geometry, list(segments))


def test_slicer_terminology_decides_an_unnamed_segment_and_a_contradiction_is_refused():
    liver_code = {"terminology": {"category": ["SCT", "123037004", "Anatomical Structure"],
                                  "type": ["SCT", "10200004", "Liver"]}}
    volume = _volume(Segment("a", "Segment_1", 0, 1, file_fields=liver_code), Segment("b", "Segment_2", 0, 2))
    assign_roles(volume)
    assert [segment.role for segment in volume.segments] == ["liver", "lesion"]
    conflicting = _volume(Segment("a", "Tumour 1", 0, 1, file_fields=liver_code))
    with pytest.raises(InputError, match=r"Tumour 1.*coded as Liver.*--lesion-segment 'Tumour 1'"):
        assign_roles(conflicting)
    assign_roles(conflicting, lesion=["tumour 1"])  # the user's word settles it
    assert conflicting.segments[0].role == "lesion"


def test_lesion_segment_patterns_name_the_lesions_and_leave_everything_else_out():
    volume = _volume(Segment("a", "Liver", 0, 1), Segment("b", "Tumour A", 0, 2), Segment("c", "tumour b", 0, 3),
                     Segment("d", "Segment_4", 0, 4))
    warnings = assign_roles(volume, lesion=["TUMOUR*"])
    assert [segment.role for segment in volume.segments] == ["liver", "lesion", "lesion", "excluded"]
    assert volume.segments[1].role_reason == LESION_OPTION_REASON
    assert warnings == []
    assign_roles(volume, lesion=["4"])  # label values and IDs work as for the other options
    assert [segment.role for segment in volume.segments] == ["liver", "excluded", "excluded", "lesion"]


def test_anatomy_is_left_out_with_one_warning_naming_it():
    volume = _volume(Segment("a", "portal vein", 0, 1), Segment("b", "Tumour", 0, 2), Segment("c", "IVC", 0, 3))
    warnings = assign_roles(volume)
    assert [segment.role for segment in volume.segments] == ["other", "lesion", "other"]
    assert len(warnings) == 1 and "'portal vein', 'IVC'" in warnings[0] and "--lesion-segment" in warnings[0]
