"""RTSTRUCT contours (written with pydicom in the test) rasterised on their CT series.

Tolerances: a polygon is filled exactly at voxel centres, so a polygon's own voxel truth (centres inside,
computed here independently by half-planes) must come out exactly. An ellipsoid drawn as 256-sided polygons
(inscribed in each slice's ellipse) can differ from the ellipsoid's voxel truth only at centres within
r (1 - cos(pi / 256)) < 0.001 mm of its surface: allowed 0.5 % (a few voxels), no more.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from synthetic_dicom import (
    Contour,
    SeriesGrid,
    SeriesIdentity,
    ellipse_contours,
    ellipsoid_volume,
    write_rtstruct,
    write_series,
)
from TTVPrognosisLib.cli import main
from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.io import read_segmentation
from TTVPrognosisLib.formats.rtstruct import fill_polygon
from TTVPrognosisLib.measure.volumetry import measure

GRID = SeriesGrid(shape_kji=(16, 40, 44), spacing_ijk=(0.7, 0.7, 2.0), origin_lps=(-15.0, -14.0, -4.0))
VOXEL_ML = 0.7 * 0.7 * 2.0 / 1000
TUMOUR = ((-3.0, 0.5, 12.0), (7.3, 6.1, 9.2))
LIVER = ((0.0, 0.0, 11.0), (13.0, 12.0, 15.0))


@pytest.fixture
def ct(tmp_path):
    identity = SeriesIdentity(description="Venous phase")
    paths = write_series(tmp_path / "ct", np.where(ellipsoid_volume(GRID, *LIVER), 60.0, -100.0), GRID, identity)
    return tmp_path, paths


def write_case(ct, name="ct/rtstruct.dcm", extra=()):
    folder, paths = ct
    rois = [{"name": "GTV liver", "interpreted_type": "GTV", "contours": ellipse_contours(GRID, *TUMOUR)},
            {"name": "Liver", "interpreted_type": "ORGAN", "contours": ellipse_contours(GRID, *LIVER)},
            {"name": "Body", "interpreted_type": "EXTERNAL",
             "contours": ellipse_contours(GRID, (0.0, 0.0, 11.0), (30.0, 30.0, 40.0))}, *extra]
    return write_rtstruct(folder / name, paths, rois)


def test_ellipsoids_within_tolerance_and_roles_from_rt_types(ct):
    volume = read_segmentation(write_case(ct))
    result = measure(volume)
    roles = {segment.name: segment.role for segment in result.segments}
    assert roles == {"GTV liver": "lesion", "Liver": "liver", "Body": "other"}
    tumour, liver = ellipsoid_volume(GRID, *TUMOUR), ellipsoid_volume(GRID, *LIVER)
    assert result.ttv_ml == pytest.approx(tumour.sum() * VOXEL_ML, rel=0.005)
    assert result.liver_volume_ml == pytest.approx(liver.sum() * VOXEL_ML, rel=0.005)
    assert len(volume.layers) == 3  # tumour inside liver inside body: each its own layer


def _convex_truth(vertices_ij: np.ndarray, shape_ji) -> np.ndarray:
    """Voxel centres inside a counter-clockwise convex polygon, by half-planes (independent of the scan line)."""
    j, i = np.indices(shape_ji)
    inside = np.ones(shape_ji, dtype=bool)
    for start, end in zip(vertices_ij, np.roll(vertices_ij, -1, axis=0)):
        edge = end - start
        inside &= edge[0] * (j - start[1]) - edge[1] * (i - start[0]) >= 0
    return inside


def test_polygon_fill_equals_the_centres_inside():
    angles = np.linspace(0, 2 * np.pi, 11, endpoint=False) + 0.1234
    vertices = np.stack([20.31 + 13.7 * np.cos(angles), 17.17 + 9.9 * np.sin(angles)], axis=1)
    filled = fill_polygon(vertices, (40, 44))
    assert filled.sum() > 300
    assert np.array_equal(filled, _convex_truth(vertices, (40, 44)))


def test_inner_contour_is_a_hole(ct, tmp_path):
    outer = ellipse_contours(GRID, (0.0, 0.0, 12.0), (9.0, 9.0, 9.0))
    inner = ellipse_contours(GRID, (0.0, 0.0, 12.0), (4.0, 4.0, 4.0))
    path = write_rtstruct(tmp_path / "ct" / "ring.dcm", ct[1], [{"name": "Ring", "contours": outer + inner}])
    ring = ellipsoid_volume(GRID, (0.0, 0.0, 12.0), (9.0, 9.0, 9.0)) & ~ellipsoid_volume(GRID, (0.0, 0.0, 12.0),
                                                                                        (4.0, 4.0, 4.0))
    assert measure(read_segmentation(path)).ttv_ml == pytest.approx(ring.sum() * VOXEL_ML, rel=0.005)


def test_cli_finds_the_ct_beside_the_rtstruct_or_is_told_where(ct, capsys):
    folder, _ = ct
    path = write_case(ct)
    assert main(["measure", str(path), "--json"]) == 0
    expected = ellipsoid_volume(GRID, *TUMOUR).sum() * VOXEL_ML
    assert json.loads(capsys.readouterr().out)["ttv_ml"] == pytest.approx(expected, rel=0.005)
    elsewhere = write_case(ct, name="rtstruct_alone.dcm")
    assert main(["measure", str(elsewhere), "--json"]) == 1
    assert "--image" in capsys.readouterr().err
    assert main(["measure", str(elsewhere), "--image", str(folder / "ct"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ttv_ml"] == pytest.approx(expected, rel=0.005)


def test_another_scan_is_refused(ct, tmp_path):
    path = write_case(ct, name="rtstruct_alone.dcm")
    write_series(tmp_path / "other", np.zeros(GRID.shape_kji), GRID)  # its own frame of reference
    with pytest.raises(InputError, match="not the scan the RTSTRUCT"):
        read_segmentation(path, reference_image=tmp_path / "other")


def test_contours_between_the_slices_of_the_ct_are_refused(ct, tmp_path):
    """Same frame of reference, but slices 1 mm further: the contours lie between them."""
    path = write_case(ct, name="rtstruct_alone.dcm")
    first = pydicom.dcmread(ct[1][0])
    shifted = SeriesGrid(GRID.shape_kji, GRID.spacing_ijk, (-15.0, -14.0, -3.0))
    identity = SeriesIdentity(study_uid=first.StudyInstanceUID, frame_of_reference_uid=first.FrameOfReferenceUID)
    write_series(tmp_path / "shifted", np.zeros(GRID.shape_kji), shifted, identity)
    with pytest.raises(InputError, match="does not lie on a slice"):
        read_segmentation(path, reference_image=tmp_path / "shifted")


def test_a_damaged_ct_series_is_refused_for_its_rtstruct_too(ct):
    path = write_case(ct)
    ct[1][5].unlink()
    with pytest.raises(InputError, match="lost"):
        read_segmentation(path)


def test_a_lost_end_slice_of_the_ct_is_found_from_the_rtstruct_references(ct):
    """Positions cannot show a lost first or last slice; the RTSTRUCT's list of the CT's images can."""
    path = write_case(ct)
    ct[1][-1].unlink()
    with pytest.raises(InputError, match="lacks 1 of the slices"):
        read_segmentation(path)


def test_open_contours_are_left_out_with_a_warning(ct):
    line = Contour(np.array([[0.0, 0.0, 10.0], [5.0, 5.0, 10.0]]))
    path = write_case(ct, extra=[{"name": "Ruler", "contours": [line]}])
    structure = pydicom.dcmread(path)
    structure.ROIContourSequence[3].ContourSequence[0].ContourGeometricType = "OPEN_PLANAR"
    structure.save_as(path)
    volume = read_segmentation(path)
    assert any("Ruler" in warning and "open contour" in warning for warning in volume.warnings)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.8, 0.99])
def test_a_cut_rtstruct_is_refused(ct, keep, capsys):
    path = write_case(ct)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    code = main(["measure", str(path), "--json"])
    captured = capsys.readouterr()
    if code == 0:  # cut inside the last ROI's contour list: fewer contours must never pass silently
        pytest.fail(f"a cut RTSTRUCT was measured: {captured.out[:200]}")
    assert code == 1 and captured.err.startswith("Error: ")
