"""Accuracy and speed of one-click lesion segmentation (TTVPrognosisLib.segment.lesion).

Accuracy: Dice per lesion against ground truth, clicking at each lesion's centroid (or the lesion voxel
nearest to it when the centroid falls outside), with and without the liver mask, on
  synthetic  deterministic CT-like cases (Testing/Python/synthetic_ct.py): lesions 5-80 mm, hypo- and
             hyperdense, at the liver edge and touching each other, noise 15 or 25 HU, 1 x 1 x 2.5 mm,
             and one 512 x 512 x 300 case at 0.7 x 0.7 x 1 mm;
  real       the cases in ../shared/data (3D-IRCADb-01 patient 1 liver tumours with the liver mask; MIRP
             soft-tissue sarcoma STS_001/002, the IBSI-1 CT phantom and pyradiomics lung1/lung2 have no
             liver, so they run without a mask). Skipped with a message when the folder is absent.
Target (issue 3): median Dice >= 0.85 for synthetic lesions >= 10 mm.
Speed: one click on the 512 x 512 x 300 synthetic CT, median of several runs per lesion (target < 1 s).

Run: .venv/bin/python benchmarks/bench_segmentation.py [--quick] [--no-real] [--repeats N] [--edge-position F]
(the shared data folder is ../shared/data beside the repository, or $TTVPROGNOSIS_SHARED_DATA)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.io import read_image
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.segment.lesion import DEFAULT_SETTINGS, SegmentationSettings, segment_lesion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "TTVPrognosis" / "Testing" / "Python"))
from shared_data import SKIP_REASON, extract_ircad_ct, extract_ircad_masks, shared_data_dir  # noqa: E402
from synthetic_ct import SyntheticCase, click_point_ras, dice, make_synthetic_ct  # noqa: E402

SIZE_CLASSES_MM = (("5-9 mm", 5.0, 9.9), ("10-19 mm", 10.0, 19.9), ("20-39 mm", 20.0, 39.9),
                   ("40-80 mm", 40.0, 80.0), ("all >= 10 mm (target >= 0.85)", 10.0, 80.0))
LARGE_CASE_SHAPE = (300, 512, 512)
LARGE_CASE_SPACING = (0.7, 0.7, 1.0)
MIN_COMPONENT_VOXELS = 10


@dataclass(frozen=True)
class Lesion:
    """One ground-truth lesion of a case, and where a reader would click."""

    case: str
    name: str
    mask_kji: np.ndarray
    click_ras: np.ndarray
    diameter_mm: float
    kind: str


@dataclass(frozen=True)
class Outcome:
    """Dice, volumes and time of one click; ``note`` holds the error or warning, shortened."""

    lesion: Lesion
    with_liver: bool
    dice: float
    truth_ml: float
    result_ml: float
    seconds: float
    note: str


@dataclass
class Case:
    name: str
    ct_kji: np.ndarray
    geometry: Geometry
    liver_kji: np.ndarray | None
    lesions: list[Lesion]


# --- cases -------------------------------------------------------------------------------------------


def equivalent_diameter_mm(mask: np.ndarray, geometry: Geometry) -> float:
    return float((6.0 * np.count_nonzero(mask) * geometry.voxel_volume_mm3 / np.pi) ** (1.0 / 3.0))


def synthetic_case(name: str, **options) -> Case:
    case: SyntheticCase = make_synthetic_ct(**options)
    lesions = []
    for lesion in case.lesions:
        mask = case.lesion_mask(lesion.label)
        traits = [lesion.polarity[:5], lesion.placement]
        if lesion.necrotic_core:
            traits.append("necrotic")
        lesions.append(Lesion(name, f"L{lesion.label:02d}", mask, click_point_ras(mask, case.geometry),
                              lesion.diameter_mm, " ".join(traits)))
    return Case(name, case.ct_kji, case.geometry, case.liver_mask_kji, lesions)


def synthetic_cases(quick: bool) -> list[Case]:
    cases = [synthetic_case("syn-s0", seed=0)]
    if quick:
        return cases
    cases += [synthetic_case("syn-s1", seed=1), synthetic_case("syn-s2", seed=2),
              synthetic_case("syn-noise25", seed=3, noise_hu=25.0)]
    return cases


def large_synthetic_case() -> Case:
    return synthetic_case("syn-512", seed=4, shape_kji=LARGE_CASE_SHAPE, spacing_ijk=LARGE_CASE_SPACING)


def lesions_from_mask(case: str, mask: np.ndarray, geometry: Geometry, prefix: str,
                      kind: str) -> list[Lesion]:
    """Each 26-connected component of a ground-truth mask is a lesion (specks under 10 voxels skipped)."""
    labels, count = ndi.label(mask, structure=np.ones((3, 3, 3)))
    lesions = []
    for label in range(1, count + 1):
        component = labels == label
        if np.count_nonzero(component) < MIN_COMPONENT_VOXELS:
            continue
        name = prefix if count == 1 else f"{prefix}#{label}"
        lesions.append(Lesion(case, name, component, click_point_ras(component, geometry),
                              equivalent_diameter_mm(component, geometry), kind))
    return lesions


def ircad_case(scratch: Path) -> Case:
    """3D-IRCADb-01 patient 1: DICOM CT, the liver and one DICOM mask series per tumour (temp folder)."""
    ct = read_image(extract_ircad_ct("ircad01", scratch))
    masks = extract_ircad_masks("ircad01", scratch)
    liver = read_image(masks["liver"]).voxels != 0
    lesions = []
    for tumour in sorted(name for name in masks if name.startswith("livertumor")):
        lesions += lesions_from_mask("ircad1", read_image(masks[tumour]).voxels != 0, ct.geometry, tumour,
                                     "liver tumour")
    return Case("ircad1", ct.voxels, ct.geometry, liver, lesions)


def file_case(name: str, image_path: Path, mask_path: Path, kind: str) -> Case:
    ct = read_image(image_path)
    mask = read_image(mask_path).voxels != 0
    return Case(name, ct.voxels, ct.geometry, None, lesions_from_mask(name, mask, ct.geometry, "gtv", kind))


def real_cases(data: Path, scratch: Path) -> list[Case]:
    sts = data / "mirp" / "sts_images"
    ibsi = data / "mirp" / "ibsi_1_ct_radiomics_phantom" / "nifti"
    radiomics = data / "pyradiomics"
    cases = [ircad_case(scratch)]
    for number in ("001", "002"):
        folder = sts / f"STS_{number}" / "CT" / "nifti"
        cases.append(file_case(f"mirp-sts{number}", folder / "image" / "image.nii.gz",
                               folder / "mask" / "mask.nii.gz", "sarcoma (no liver)"))
    cases.append(file_case("ibsi-ct-phantom", ibsi / "image" / "phantom.nii.gz",
                           ibsi / "mask" / "mask.nii.gz", "lung tumour (no liver)"))
    for lung in ("lung1", "lung2"):
        cases.append(file_case(f"pyradiomics-{lung}", radiomics / f"{lung}_image.nrrd",
                               radiomics / f"{lung}_label.nrrd", "lung lesion (no liver)"))
    return cases


# --- running -----------------------------------------------------------------------------------------


def click(case: Case, lesion: Lesion, with_liver: bool, settings: SegmentationSettings) -> Outcome:
    truth_ml = np.count_nonzero(lesion.mask_kji) * case.geometry.voxel_volume_ml
    liver = case.liver_kji if with_liver else None
    started = time.perf_counter()
    try:
        result = segment_lesion(case.ct_kji, case.geometry, [lesion.click_ras], liver, settings=settings)
    except InputError as error:
        return Outcome(lesion, with_liver, 0.0, truth_ml, 0.0, time.perf_counter() - started,
                       f"error: {shorten(str(error))}")
    seconds = time.perf_counter() - started
    overlap = dice(result.full_mask(), lesion.mask_kji)
    note = shorten(result.warnings[0]) if result.warnings else ""
    return Outcome(lesion, with_liver, overlap, truth_ml, result.volume_ml, seconds, note)


def shorten(text: str, length: int = 70) -> str:
    text = text.split(": ", 1)[-1] if text.startswith("Point") else text
    return text if len(text) <= length else text[:length - 3] + "..."


def run_case(case: Case, settings: SegmentationSettings) -> list[Outcome]:
    modes = (True, False) if case.liver_kji is not None else (False,)
    return [click(case, lesion, with_liver, settings) for lesion in case.lesions for with_liver in modes]


def time_clicks(case: Case, repeats: int) -> list[tuple[Lesion, float]]:
    """Median seconds of ``repeats`` clicks per lesion, with the liver mask (the usual way to use it)."""
    timings = []
    for lesion in case.lesions:
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            with contextlib.suppress(InputError):
                segment_lesion(case.ct_kji, case.geometry, [lesion.click_ras], case.liver_kji)
            runs.append(time.perf_counter() - started)
        timings.append((lesion, statistics.median(runs)))
    return timings


# --- reporting ---------------------------------------------------------------------------------------


def print_outcomes(title: str, outcomes: list[Outcome]) -> None:
    print(f"\n## {title}\n")
    print("| case | lesion | kind | diam mm | truth mL | mask | result mL | Dice | s | note |")
    print("|---|---|---|---:|---:|---|---:|---:|---:|---|")
    for outcome in outcomes:
        lesion = outcome.lesion
        mask = "liver" if outcome.with_liver else "none"
        print(f"| {lesion.case} | {lesion.name} | {lesion.kind} | {lesion.diameter_mm:.0f} | "
              f"{outcome.truth_ml:.2f} | {mask} | {outcome.result_ml:.2f} | {outcome.dice:.3f} | "
              f"{outcome.seconds:.2f} | {outcome.note} |")


def median_or_dash(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (n={len(values)})" if values else "-"


def print_synthetic_summary(outcomes: list[Outcome]) -> None:
    print("\n## Synthetic summary: median Dice by nominal diameter\n")
    print("| diameter | with liver mask | without liver mask |")
    print("|---|---:|---:|")
    for label, low, high in SIZE_CLASSES_MM:
        cells = []
        for with_liver in (True, False):
            values = [o.dice for o in outcomes
                      if o.with_liver == with_liver and low <= o.lesion.diameter_mm <= high]
            cells.append(median_or_dash(values))
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    failures = [o for o in outcomes if o.note.startswith("error")]
    print(f"\nErrors raised: {len(failures)} of {len(outcomes)} clicks.")


def print_real_summary(outcomes: list[Outcome]) -> None:
    print("\n## Real summary: median Dice\n")
    print("| cases | mask | median Dice | volume ratio (result / truth), median |")
    print("|---|---|---:|---:|")
    groups = [("3D-IRCADb-01 patient 1", lambda o: o.lesion.case == "ircad1"),
              ("non-liver (sarcoma, lung)", lambda o: o.lesion.case != "ircad1")]
    for label, belongs in groups:
        for with_liver in (True, False):
            chosen = [o for o in outcomes if belongs(o) and o.with_liver == with_liver]
            if not chosen:
                continue
            ratios = [o.result_ml / o.truth_ml for o in chosen if o.truth_ml > 0]
            print(f"| {label} | {'liver' if with_liver else 'none'} | "
                  f"{median_or_dash([o.dice for o in chosen])} | {statistics.median(ratios):.2f} |")


def print_timings(case: Case, timings: list[tuple[Lesion, float]], repeats: int) -> None:
    shape = " x ".join(str(n) for n in case.geometry.shape_ijk)
    print(f"\n## Speed: one click on the {shape} synthetic CT (median of {repeats} runs per lesion, "
          "with the liver mask)\n")
    print("| lesion | diameter mm | seconds |")
    print("|---|---:|---:|")
    for lesion, seconds in timings:
        print(f"| {lesion.name} | {lesion.diameter_mm:.0f} | {seconds:.3f} |")
    typical = [seconds for lesion, seconds in timings if 10.0 <= lesion.diameter_mm <= 40.0]
    print(f"\nMedian over all lesions: {statistics.median(s for _, s in timings):.3f} s; lesions 10-40 mm: "
          f"{statistics.median(typical):.3f} s; slowest: {max(s for _, s in timings):.3f} s (target < 1 s).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small synthetic case, no 512^2 case")
    parser.add_argument("--no-real", action="store_true", help="skip the real cases")
    parser.add_argument("--repeats", type=int, default=5, help="runs per lesion for the timing")
    parser.add_argument("--edge-position", type=float, default=DEFAULT_SETTINGS.edge_position,
                        help="where between lesion and background the edge is drawn (0.5 = half contrast)")
    args = parser.parse_args()
    settings = replace(DEFAULT_SETTINGS, edge_position=args.edge_position)
    print(f"# One-click lesion segmentation benchmark\n\nPython {platform.python_version()}, "
          f"{os.cpu_count()} cores, SimpleITK {sitk.Version.VersionString()}, "
          f"edge position {settings.edge_position}")

    synthetic = [outcome for case in synthetic_cases(args.quick) for outcome in run_case(case, settings)]
    large = None if args.quick else large_synthetic_case()
    if large is not None:
        synthetic += run_case(large, settings)
    print_outcomes("Synthetic cases (click at each lesion's centroid)", synthetic)
    print_synthetic_summary(synthetic)

    if args.no_real:
        print("\nReal cases skipped (--no-real).")
    elif shared_data_dir() is None:
        print(f"\nReal cases skipped: {SKIP_REASON}.")
    else:
        with tempfile.TemporaryDirectory(prefix="ttv-bench-") as scratch:
            cases = real_cases(shared_data_dir(), Path(scratch))
        real = [outcome for case in cases for outcome in run_case(case, settings)]
        print_outcomes("Real cases (click at each lesion's centroid)", real)
        print_real_summary(real)

    if large is not None:
        print_timings(large, time_clicks(large, args.repeats), args.repeats)


if __name__ == "__main__":
    main()
