"""Speed of TTV and of the full measurement against the floor and against ITK's Feret paths, in one run.

Case: a 512 x 512 x 300 segmentation (0.75 x 0.75 x 1.5 mm) with 25 lesions in a liver (one of 150 mm,
the others 60 to 5 mm).
Measured, each as the median of several runs:
  floor        np.count_nonzero on the label array (no tool can count voxels faster)
  ttv          TTVPrognosisLib.measure.volumetry.total_tumor_volume_ml (TTV alone)
  measure      TTVPrognosisLib.measure.volumetry.measure (TTV, 26-connected lesions, diameters, segments, liver)
  sitk         SimpleITK ConnectedComponent + LabelShapeStatistics with Feret diameter
  vtkitk       Slicer's vtkITKLabelShapeStatistics with Feret diameter on the component labels
Targets (issue 2): measure >= 10x faster than the ITK Feret paths; ttv within 3x of the floor.

Run: .venv/bin/python benchmarks/bench_measure.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np

from TTVPrognosisLib.formats.demo_data import axis_aligned_geometry, ellipsoid_mask
from TTVPrognosisLib.formats.io import image_to_itk
from TTVPrognosisLib.formats.segments import LabelVolume, Segment
from TTVPrognosisLib.measure.volumetry import measure, total_tumor_volume_ml

SHAPE_KJI = (300, 512, 512)
SPACING_MM = (0.75, 0.75, 1.5)
LESION_COUNT = 25
# The 150 mm lesion is organ-sized (about 1.4 L): counted only when the lesions are named (role_checks.py).
LESIONS = ["Lesion *"]


LIVER_CENTRE_RAS = np.array([30.0, 10.0, 0.0])
LIVER_RADII_MM = np.array([140.0, 110.0, 105.0])


def benchmark_case(seed: int = 7) -> tuple[LabelVolume, np.ndarray]:
    """Liver layer plus a lesion layer with 25 separate lesions (labels 1..25): one of 150 mm, then 60 to 5 mm.

    Lesions are placed largest first, at random, inside the liver and apart from each other, as
    overlapping Slicer segments would be stored (liver and lesions in different layers).
    """
    geometry = axis_aligned_geometry(SHAPE_KJI, SPACING_MM)
    rng = np.random.default_rng(seed)
    liver = ellipsoid_mask(geometry, LIVER_CENTRE_RAS, LIVER_RADII_MM)
    lesions = np.zeros(SHAPE_KJI, dtype=np.uint8)
    placed: list[tuple[np.ndarray, float]] = []
    diameters_mm = np.concatenate([[150.0], np.geomspace(60.0, 5.0, LESION_COUNT - 1)])
    for number, diameter in enumerate(diameters_mm, start=1):
        radius = diameter / 2.0
        for _attempt in range(100_000):
            centre = LIVER_CENTRE_RAS + rng.uniform(-1.0, 1.0, 3) * (LIVER_RADII_MM - radius)
            inside_liver = np.sum(((centre - LIVER_CENTRE_RAS) / (LIVER_RADII_MM - radius)) ** 2) <= 1.0
            apart = all(np.linalg.norm(centre - other) > radius + other_radius + 3.0 for other, other_radius in placed)
            if inside_liver and apart:
                break
        else:
            raise RuntimeError(f"Could not place lesion {number} ({diameter:.0f} mm) in the liver.")
        placed.append((centre, radius))
        lesions[ellipsoid_mask(geometry, centre, radius * rng.uniform(0.8, 1.0, 3))] = number
    segments = [Segment("liver", "Liver", 0, 1)] + [Segment(f"lesion{n}", f"Lesion {n}", 1, n)
                                                    for n in range(1, LESION_COUNT + 1)]
    return LabelVolume([liver.astype(np.uint8), lesions], geometry, segments, "benchmark"), lesions


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def sitk_feret(labels: np.ndarray, volume: LabelVolume) -> None:
    import SimpleITK as sitk

    lesions = image_to_itk((labels > 0).astype(np.uint8), volume.geometry)
    components = sitk.ConnectedComponent(lesions, True)
    statistics_filter = sitk.LabelShapeStatisticsImageFilter()
    statistics_filter.SetComputeFeretDiameter(True)
    statistics_filter.Execute(components)


def vtkitk_feret(component_labels: np.ndarray, volume: LabelVolume) -> None:
    import slicer
    import vtk
    from vtk.util import numpy_support

    image = vtk.vtkImageData()
    image.SetDimensions(*component_labels.shape[::-1])
    image.SetSpacing(*volume.geometry.spacing)
    flat = np.ascontiguousarray(component_labels).ravel()
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(flat, deep=False))
    directions = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            directions.SetElement(row, column, volume.geometry.direction_ras[row, column])
    shape_statistics = slicer.vtkITKLabelShapeStatistics()
    shape_statistics.SetInputData(image)
    shape_statistics.SetDirections(directions)
    shape_statistics.ComputeShapeStatisticOn("FeretDiameter")
    shape_statistics.Update()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    volume, labels = benchmark_case()
    component_labels = measure(volume, keep_labels=True, lesion=LESIONS).lesion_labels.full()

    floor = median_seconds(lambda: np.count_nonzero(labels), args.repeats)
    ttv = median_seconds(lambda: total_tumor_volume_ml(volume, lesion=LESIONS), args.repeats)
    full = median_seconds(lambda: measure(volume, lesion=LESIONS), args.repeats)
    itk_repeats = max(1, args.repeats // 2)
    sitk_seconds = median_seconds(lambda: sitk_feret(labels, volume), itk_repeats)
    vtkitk_seconds = median_seconds(lambda: vtkitk_feret(component_labels, volume), itk_repeats)

    result = measure(volume, lesion=LESIONS)
    print(f"Case: {' x '.join(map(str, SHAPE_KJI[::-1]))} voxels, {result.lesion_count} lesions, "
          f"TTV {result.ttv_ml:.1f} mL, largest lesion {result.largest_diameter_mm:.0f} mm")
    rows = [("floor: np.count_nonzero", floor), ("ours: TTV alone", ttv), ("ours: full measurement", full),
            ("SimpleITK LabelShapeStatistics + Feret", sitk_seconds),
            ("Slicer vtkITKLabelShapeStatistics + Feret", vtkitk_seconds)]
    for name, seconds in rows:
        print(f"  {name:<44} {seconds * 1000:10.1f} ms")
    print("Ratios")
    print(f"  TTV alone / floor                       {ttv / floor:6.2f}x   (target <= 3)")
    print(f"  SimpleITK Feret / our full measurement  {sitk_seconds / full:6.1f}x   (target >= 10)")
    print(f"  vtkITK Feret / our full measurement     {vtkitk_seconds / full:6.1f}x   (target >= 10)")


if __name__ == "__main__":
    main()
