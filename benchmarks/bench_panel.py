"""Responsiveness of the Slicer panel, headless on slicer-core, driving the same logic calls the panel makes.

Case: a 512 x 512 x 300 CT (0.75 x 0.75 x 1.5 mm, int16) with a liver and 25 lesions (bench_measure's case:
one of 150 mm, then 60 to 5 mm); the segmentation holds the liver and 24 lesions, the 25-mm lesion is left
out to be added with a click. Follow-up: the same scan (so registration is quick to converge; the library is
timed on the same inputs).
Measured (median of --repeats runs unless said):
  add lesion     PanelLogic.addLesionAtPoint + lesionRows: the click, and the review table refreshed with the
                 new lesion (what the user waits for). Before this issue: review.add_lesion_at_points_to_node +
                 review.lesion_rows on the whole grid (timed once, as "add lesion, whole grid").
  parameter      a clinical value changed: what the panel does for it (result_state.shown_results, the table's
                 key unchanged so no lesionRows), and a keystroke in "Exclude segments" (lesionRows, cached sizes).
  compute        PanelLogic.computeTTV (nodes -> outcome -> result tables) against the library's own
                 pipeline.compare_volumes on the same label volumes and CT arrays, read beforehand (registration on).
Targets (issue 15): add lesion < 0.5 s; a parameter change not affecting the lesion table costs nothing;
compute <= 1.5 x the library's compare.

Run: .venv/bin/python benchmarks/bench_panel.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import slicer
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_measure import benchmark_case

from TTVPrognosisLib.formats.io import ImageVolume
from TTVPrognosisLib.formats.segments import LabelVolume
from TTVPrognosisLib.mrml import nodes as mrml
from TTVPrognosisLib.mrml import result_state, review
from TTVPrognosisLib.mrml.panel_logic import PanelLogic
from TTVPrognosisLib.pipeline import compare_volumes

CLICKED_LESION = 10  # about 25 mm across


class ParameterNode:
    """The parameterNodeWrapper's behaviour on slicer-core: each write is a MRML write (a ModifiedEvent)."""

    def __init__(self, scene):
        object.__setattr__(self, "parameterNode", scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode"))
        object.__setattr__(self, "values", {
            "excludedSegments": "", "registerFollowup": True, "reviewTimePoint": "Baseline",
            "nodePositivePrimary": "Unknown", "diseaseFreeIntervalMonths": -1.0, "ceaNgMl": -1.0,
            "krasMutated": "Unknown", "extrahepaticDisease": "Unknown"})

    def __getattr__(self, name):
        if name in self.values:
            return self.values[name]
        return self.parameterNode.GetNodeReference(name)

    def __setattr__(self, name, value):
        if name in self.values:
            self.values[name] = value
            self.parameterNode.SetParameter(name, str(value))
        else:
            self.parameterNode.SetNodeReferenceID(name, value.GetID() if value is not None else None)

    def StartModify(self):
        return self.parameterNode.StartModify()

    def EndModify(self, was_modifying):
        return self.parameterNode.EndModify(was_modifying)


def median_seconds(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds. CPU time (this process, all threads) is the steadier figure on a shared machine."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def scan(volume: LabelVolume, lesions: np.ndarray, seed: int = 3) -> np.ndarray:
    """A CT: soft tissue 40 HU, liver 110 HU, hypodense lesions 45 HU, noise of 10 HU."""
    rng = np.random.default_rng(seed)
    ct = np.full(volume.geometry.shape_kji, 40, dtype=np.int16)
    ct[volume.layers[0] > 0] = 110
    ct[lesions > 0] = 45
    ct += rng.normal(0.0, 10.0, ct.shape).astype(np.int16)
    return ct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    volume, lesions = benchmark_case()
    ct = scan(volume, lesions)
    click = volume.geometry.ras_from_kji(np.array(ndimage.center_of_mass(lesions == CLICKED_LESION)))[0]
    without_clicked = LabelVolume([volume.layers[0], np.where(lesions == CLICKED_LESION, 0, lesions).astype(np.uint8)],
                                  volume.geometry, [s for s in volume.segments if s.label_value != CLICKED_LESION
                                                    or s.layer == 0], "benchmark")
    ct_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    slicer.util.updateVolumeFromArray(ct_node, ct)
    ct_node.SetIJKToRASMatrix(mrml.numpy_to_matrix(volume.geometry.ijk_to_ras))
    print(f"CT {ct.shape[::-1]} voxels, spacing {volume.geometry.spacing} mm; clicked lesion {CLICKED_LESION}")

    logic = PanelLogic()
    parameter_node = ParameterNode(scene)
    parameter_node.baselineVolume = ct_node
    parameter_node.followupVolume = ct_node

    def fresh_segmentation():
        node = mrml.segmentation_node_from_label_volume(without_clicked, scene, "Baseline")
        parameter_node.baselineSegmentation = node
        logic.lesionRows(parameter_node)  # the table as it was before the click (cache filled)
        return node

    walls, cpus = [], []
    for _ in range(args.repeats):
        node = fresh_segmentation()
        wall, cpu = time.perf_counter(), time.process_time()
        logic.addLesionAtPoint(parameter_node, click)
        rows = logic.lesionRows(parameter_node)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        scene.RemoveNode(node)
    assert len(rows) == 25, len(rows)
    node = mrml.segmentation_node_from_label_volume(without_clicked, scene, "Whole grid")
    wall, cpu = time.perf_counter(), time.process_time()
    review.add_lesion_at_points_to_node(node, ct_node, [click])
    review.lesion_rows(node, ct_node)
    whole = time.perf_counter() - wall, time.process_time() - cpu
    scene.RemoveNode(node)
    print("                                 wall s    CPU s")
    print(f"add lesion (click to table)    {statistics.median(walls):8.3f} {statistics.median(cpus):8.3f}"
          "   target < 0.5 s")
    print(f"add lesion, whole grid (before){whole[0]:8.3f} {whole[1]:8.3f}")

    node = fresh_segmentation()
    parameter_node.followupSegmentation = mrml.segmentation_node_from_label_volume(volume, scene, "Follow-up")

    def clinical_change():
        parameter_node.krasMutated = "Yes" if parameter_node.krasMutated != "Yes" else "No"
        result_state.shown_results(parameter_node)

    def keystroke():
        parameter_node.excludedSegments = "Lesion 3" if parameter_node.excludedSegments != "Lesion 3" else "Lesion"
        logic.lesionRows(parameter_node)

    print(f"clinical value changed          {median_seconds(clinical_change, 20)[0] * 1000:7.3f} ms")
    print(f"keystroke in Exclude segments   {median_seconds(keystroke, 20)[0] * 1000:7.3f} ms")
    parameter_node.excludedSegments = ""

    baseline_volume, _ = mrml.time_point_from_nodes(node, ct_node, read_voxels=False)
    followup_volume, _ = mrml.time_point_from_nodes(parameter_node.followupSegmentation, ct_node, read_voxels=False)
    image = ImageVolume(ct, volume.geometry, "CT")
    library_runs, panel_runs = [], []
    for _ in range(args.repeats):  # interleaved, so that a change of load on the machine touches both alike
        library_runs.append(median_seconds(lambda: compare_volumes(
            baseline_volume, followup_volume, baseline_image=image, followup_image=image), 1))
        panel_runs.append(median_seconds(lambda: logic.computeTTV(parameter_node), 1))
    library = tuple(statistics.median(run[index] for run in library_runs) for index in (0, 1))
    panel = tuple(statistics.median(run[index] for run in panel_runs) for index in (0, 1))
    print(f"library compare                {library[0]:8.3f} {library[1]:8.3f}")
    print(f"Compute TTV (panel)            {panel[0]:8.3f} {panel[1]:8.3f}   ratio {panel[0] / library[0]:.2f} wall, "
          f"{panel[1] / library[1]:.2f} CPU (target <= 1.5)")


if __name__ == "__main__":
    main()
