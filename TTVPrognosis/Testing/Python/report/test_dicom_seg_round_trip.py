"""export-seg, then read back through this tool's own DICOM SEG reader: the same TTV, liver volume, roles,
segment names and Verified states (issue 17: "our reader: TTV and liver role identical")."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthetic_dicom import SeriesGrid, ellipsoid_volume, write_series
from TTVPrognosisLib.cli import main
from TTVPrognosisLib.formats.dicom_seg import parse_segment_description, segment_description_text
from TTVPrognosisLib.formats.io import read_image, read_segmentation, write_segmentation
from TTVPrognosisLib.formats.segments import (
    ROLE_LESION,
    ROLE_LIVER,
    ROLE_TAG,
    VERIFIED_TAG,
    LabelVolume,
    Segment,
)
from TTVPrognosisLib.measure.volumetry import measure

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

# Rows run to the patient's right (-x in LPS), so the CT's grid is not the identity; slices 3 mm apart.
GRID = SeriesGrid(shape_kji=(14, 40, 44), spacing_ijk=(0.75, 0.8, 3.0), origin_lps=(15.0, -12.0, 40.0),
                  row_direction=(-1.0, 0.0, 0.0), column_direction=(0.0, 1.0, 0.0))
# name -> (role, verified, centre offset from the liver's centre in mm (LPS), radii in mm)
LESIONS = {"Lesion 1": (True, (4.0, 0.0, 0.0), (5.0, 4.0, 6.0)),
           "Metastase 2": (True, (-3.0, 2.0, 0.0), (4.0, 4.0, 6.0)),  # overlaps Lesion 1 by a few voxels
           "Lesion 3": (False, (2.0, -7.0, 12.0), (3.0, 3.0, 4.0)),
           "Segment_7": (False, (-4.0, 6.0, -12.0), (2.5, 3.0, 4.0))}  # a name that says nothing: the tag does
LIVER_NAME = "Leber"  # German for liver: the role comes from the tag, then from the SEG's codes


@pytest.fixture
def exported(tmp_path):
    """A CT series, a segmentation on it (liver + four lesions, two verified), and its export as DICOM SEG."""
    centre = np.asarray(GRID.position(GRID.shape_kji[0] // 2)) + np.array([-16.0, 16.0, 0.0])
    hu = np.where(ellipsoid_volume(GRID, centre, (15.0, 13.0, 18.0)), 60, -80).astype(np.int16)
    write_series(tmp_path / "ct", hu, GRID)
    geometry = read_image(tmp_path / "ct").geometry
    masks = [ellipsoid_volume(GRID, centre, (15.0, 13.0, 18.0))]
    segments = [Segment("liver", LIVER_NAME, 0, 1, {ROLE_TAG: ROLE_LIVER, VERIFIED_TAG: "1"})]
    for index, (name, (verified, offset, radii)) in enumerate(LESIONS.items(), start=1):
        masks.append(ellipsoid_volume(GRID, centre + np.asarray(offset), radii))
        segments.append(Segment(f"s{index}", name, index, 1, {ROLE_TAG: ROLE_LESION, VERIFIED_TAG: "1" if verified
                                                              else "0"}))
    assert np.count_nonzero(masks[1] & masks[2]) > 0, "two lesions overlap: the TTV counts the union"
    volume = LabelVolume([mask.astype(np.uint8) for mask in masks], geometry, segments, "original")
    write_segmentation(volume, tmp_path / "seg.seg.nrrd")
    assert main(["export-seg", str(tmp_path / "seg.seg.nrrd"), "--image", str(tmp_path / "ct"), "--output",
                 str(tmp_path / "seg.dcm")]) == 0
    return tmp_path, measure(read_segmentation(tmp_path / "seg.seg.nrrd"))


def _states(measurement) -> dict:
    return {segment.name: (segment.role, segment.verified) for segment in measurement.segments}


EXPECTED_STATES = {LIVER_NAME: (ROLE_LIVER, True),
                   **{name: (ROLE_LESION, verified) for name, (verified, _, _) in LESIONS.items()}}


@pytest.mark.parametrize("with_ct", [False, True], ids=["SEG alone", "SEG on its CT"])
def test_our_reader_reads_back_the_same_ttv_liver_roles_names_and_verified_states(exported, with_ct):
    folder, original = exported
    assert original.ttv_ml > 0 and original.lesion_count >= 3
    volume = read_segmentation(folder / "seg.dcm", folder / "ct" if with_ct else None)
    back = measure(volume)
    assert back.ttv_ml == pytest.approx(original.ttv_ml, rel=1e-9)
    assert back.liver_volume_ml == pytest.approx(original.liver_volume_ml, rel=1e-9)
    assert back.lesion_count == original.lesion_count
    assert [lesion.volume_ml for lesion in back.lesions] == pytest.approx([lesion.volume_ml
                                                                          for lesion in original.lesions], rel=1e-9)
    assert _states(back) == _states(original) == EXPECTED_STATES
    assert not [warning for warning in volume.warnings if "description" in warning]


def test_measure_command_on_the_seg_alone_and_with_its_ct(exported, capsys):
    folder, original = exported
    documents = []
    for extra in ([], ["--image", str(folder / "ct")]):
        assert main(["measure", str(folder / "seg.dcm"), *extra, "--json"]) == 0
        documents.append(json.loads(capsys.readouterr().out))
    for document in documents:
        assert document["ttv_ml"] == pytest.approx(original.ttv_ml, rel=1e-9)
        assert document["liver_volume_ml"] == pytest.approx(original.liver_volume_ml, rel=1e-9)
        assert {item["name"]: (item["role"], item["verified"]) for item in document["segments"]} == EXPECTED_STATES


def _edit_segment(path, label: str, edit) -> None:
    dataset = pydicom.dcmread(path)
    item = next(item for item in dataset.SegmentSequence if item.SegmentLabel == label)
    edit(item)
    dataset.save_as(path)


def test_the_older_anatomical_structure_code_is_read_as_liver_too(exported):
    """Slicer's terminology codes the category as SCT 123037004; the export uses CID 7150's 91723000."""
    folder, original = exported
    dataset = pydicom.dcmread(folder / "seg.dcm")
    liver = next(item for item in dataset.SegmentSequence if item.SegmentLabel == LIVER_NAME)
    assert liver.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"

    def older_code(item):
        item.SegmentedPropertyCategoryCodeSequence[0].CodeValue = "123037004"
        item.SegmentDescription = "Liver segmentation"  # another tool's free text: no role, no Verified state

    _edit_segment(folder / "seg.dcm", LIVER_NAME, older_code)
    back = measure(read_segmentation(folder / "seg.dcm"))
    assert _states(back)[LIVER_NAME] == (ROLE_LIVER, False)
    assert back.ttv_ml == pytest.approx(original.ttv_ml, rel=1e-9)
    assert back.liver_volume_ml == pytest.approx(original.liver_volume_ml, rel=1e-9)


def test_the_description_decides_the_role_only_where_the_codes_do_not(exported):
    folder, original = exported

    def generic_codes(item):  # "Tissue" / "Tissue": Slicer's default for a new segment, decides nothing
        for sequence in (item.SegmentedPropertyCategoryCodeSequence, item.SegmentedPropertyTypeCodeSequence):
            sequence[0].CodeValue, sequence[0].CodeMeaning = "85756007", "Tissue"

    _edit_segment(folder / "seg.dcm", "Segment_7", generic_codes)
    _edit_segment(folder / "seg.dcm", "Lesion 1",
                  lambda item: setattr(item, "SegmentDescription", segment_description_text(ROLE_LIVER, True)))
    volume = read_segmentation(folder / "seg.dcm")
    back = measure(volume)
    states = _states(back)
    assert states["Segment_7"] == (ROLE_LESION, False)  # from the description
    assert states["Lesion 1"] == (ROLE_LESION, False)  # coded as a metastasis: the codes win, not verified
    assert any("Lesion 1" in warning and "coded as lesion but its description says liver" in warning
               for warning in volume.warnings)
    assert back.ttv_ml == pytest.approx(original.ttv_ml, rel=1e-9)


@pytest.mark.parametrize(("text", "expected"), [
    ("TTVPrognosis role=lesion; verified=yes", (ROLE_LESION, True)),
    ("ttvprognosis role=Liver;verified=NO", (ROLE_LIVER, False)),
    ("TTVPrognosis role=lesion; verified=maybe", (ROLE_LESION, None)),
    ("TTVPrognosis role=tumour; verified=yes", (None, True)),
    ("TTVPrognosis", (None, None)),
    ("Liver Segmentation", (None, None)),
    ("TTVPrognosisX role=lesion; verified=yes", (None, None)),
    ("", (None, None)),
])
def test_segment_description_parsing(text, expected):
    assert parse_segment_description(text) == expected


@pytest.mark.parametrize("role", [ROLE_LESION, ROLE_LIVER])
@pytest.mark.parametrize("verified", [True, False])
def test_segment_description_text_parses_back(role, verified):
    assert parse_segment_description(segment_description_text(role, verified)) == (role, verified)
