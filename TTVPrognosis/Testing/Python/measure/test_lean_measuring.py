"""Distances in numpy equal scipy's; `measure` as a command imports only what measuring uses (labelling
still needs scipy.ndimage: issue 19 continues)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from TTVPrognosisLib.formats.demo_data import axis_aligned_geometry
from TTVPrognosisLib.formats.io import write_image
from TTVPrognosisLib.measure import diameters
from TTVPrognosisLib.measure.diameters import squared_distances


@pytest.mark.parametrize("dimensions", [2, 3])
def test_squared_distances_are_cdists(dimensions):
    rng = np.random.default_rng(dimensions)
    first = rng.normal(0, 50, (57, dimensions))
    second = rng.normal(10, 80, (33, dimensions))
    assert np.array_equal(squared_distances(first, second), cdist(first, second, "sqeuclidean"))


def test_blockwise_farthest_distance_is_cdists(monkeypatch):
    rng = np.random.default_rng(7)
    first, second = rng.normal(0, 30, (101, 3)), rng.normal(5, 30, (77, 3))
    monkeypatch.setattr(diameters, "_DISTANCE_CHUNK", 3 * 77 * 4)  # blocks of 4 rows, the last one partial
    expected = float(np.sqrt(cdist(first, second, "sqeuclidean").max()))
    assert diameters._farthest_between(first, second) == expected


def test_measure_command_imports_no_comparing_prognosis_or_other_scipy(tmp_path):
    labels = np.zeros((20, 30, 30), dtype=np.uint8)
    labels[3:8, 4:10, 5:12] = 1
    labels[12:15, 20:25, 20:26] = 1
    path = tmp_path / "lesions.nrrd"
    write_image(labels, axis_aligned_geometry(labels.shape, (0.8, 0.8, 2.0)), path)
    script = ("import runpy, sys\n"
              f"sys.argv = ['ttvprognosis', 'measure', {str(path)!r}, '--json']\n"
              "try:\n    runpy.run_module('TTVPrognosisLib', run_name='__main__')\nexcept SystemExit:\n    pass\n"
              "print(sorted(name for name in sys.modules if name.startswith(('scipy.optimize', 'scipy.spatial')) or "
              "name.startswith(('TTVPrognosisLib.response', 'TTVPrognosisLib.prognosis', "
              "'TTVPrognosisLib.report.documents'))), file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-B", "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["lesion_count"] == 2  # it measured
    assert run.stderr.strip().splitlines()[-1] == "[]"
