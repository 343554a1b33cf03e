"""Throughput of ``ttvprognosis batch`` against the floor of only reading the files, with 1 and 2 workers.

Cohort: 100 synthetic patients, each a baseline and a follow-up Slicer segmentation (.seg.nrrd, gzip) of a
clinical size (512 x 512 x 100 voxels, 0.78 x 0.78 x 2.5 mm; a liver layer and a lesion layer with five
lesions, the follow-up 20 % smaller). Ten distinct patients are generated and copied to make 100, so the
set-up stays short; every patient has its own files and every run reads all 200 of them.

Measured for 1 worker (in-process) and 2 workers (process pool), each run timed once after a warm-up read
of every file (all files are in the page cache, as on a second pass over a cohort):
  read      only reading both segmentations of every patient (io.read_segmentation): the floor
  compute   the same work as the batch per patient (read, measure, compare, prognosis, flatten) in a bare
            loop / pool.map, without manifest, tables or CSV writing: what the batch machinery adds on top
  batch     cohort.run_cohort on the manifest, writing the results and lesion tables
The per-patient work is run with registration (what ``compare`` and ``batch`` do by default: the two
liver masks are registered before lesion matching) and without (``--no-registration``).
Target (issue 6): batch >= 80 % of the read-only throughput.

Run: .venv/bin/python benchmarks/bench_cohort.py [--patients 100] [--slices 100] [--registration both|on|off]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from TTVPrognosisLib.cohort import PatientJob, process_patient, run_cohort
from TTVPrognosisLib.demo_data import axis_aligned_geometry, ellipsoid_mask
from TTVPrognosisLib.io import read_segmentation, write_segmentation
from TTVPrognosisLib.segments import LabelVolume, Segment

SPACING_MM = (0.78, 0.78, 2.5)
LIVER_CENTRE_RAS = np.array([60.0, 20.0, 0.0])
LIVER_RADII_MM = np.array([95.0, 80.0, 75.0])
LESION_COUNT = 5
DISTINCT = 10


def write_cohort(folder: Path, patients: int, slices: int) -> Path:
    """Segmentations of ``DISTINCT`` patients, copied to make ``patients``; returns the manifest."""
    geometry = axis_aligned_geometry((slices, 512, 512), SPACING_MM)
    liver = ellipsoid_mask(geometry, LIVER_CENTRE_RAS, LIVER_RADII_MM)
    segments = [Segment("Liver", "Liver", 0, 1)] + [Segment(f"Lesion_{n}", f"Lesion {n}", 1, n)
                                                    for n in range(1, LESION_COUNT + 1)]
    rng = np.random.default_rng(6)
    data = folder / "data"
    data.mkdir(parents=True)
    for index in range(DISTINCT):
        centres = LIVER_CENTRE_RAS + rng.uniform(-40.0, 40.0, (LESION_COUNT, 3)) * [1.0, 1.0, 0.6]
        radii = rng.uniform(5.0, 25.0, (LESION_COUNT, 3))
        for name, scale in (("baseline", 1.0), ("followup", 0.8)):
            lesions = np.zeros(geometry.shape_kji, dtype=np.uint8)
            for number in range(LESION_COUNT):
                lesions[ellipsoid_mask(geometry, centres[number], radii[number] * scale) & liver] = number + 1
            volume = LabelVolume([liver.astype(np.uint8), lesions], geometry, segments, f"patient {index}")
            write_segmentation(volume, data / f"P{index + 1:03d}_{name}.seg.nrrd")
    rows = []
    for index in range(patients):
        patient_id = f"P{index + 1:03d}"
        for name in ("baseline", "followup"):
            target = data / f"{patient_id}_{name}.seg.nrrd"
            if not target.exists():
                shutil.copyfile(data / f"P{index % DISTINCT + 1:03d}_{name}.seg.nrrd", target)
        rows.append([patient_id, f"data/{patient_id}_baseline.seg.nrrd", f"data/{patient_id}_followup.seg.nrrd",
                     str(40 + index % 40)])
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "baseline_segmentation", "followup_segmentation", "age"])
        writer.writerows(rows)
    return manifest


def read_patient(paths: tuple[str, str]) -> int:
    """The floor: read both segmentations (nothing else)."""
    return sum(int(read_segmentation(path).layers[0].shape[0]) for path in paths)


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def run_pool(function, items, workers: int) -> None:
    if workers == 1:
        for item in items:
            function(item)
        return
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(function, items))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--registration", choices=("both", "on", "off"), default="both")
    parser.add_argument("--keep", metavar="DIR", help="write the cohort here and keep it (default: a temp folder)")
    args = parser.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-cohort-"))
    try:
        start = time.perf_counter()
        manifest = write_cohort(folder, args.patients, args.slices)
        data = folder / "data"
        pairs = [(str(data / f"P{n:03d}_baseline.seg.nrrd"), str(data / f"P{n:03d}_followup.seg.nrrd"))
                 for n in range(1, args.patients + 1)]
        size_mb = sum(path.stat().st_size for path in data.iterdir()) / 1e6
        print(f"Cohort: {args.patients} patients x 2 segmentations (512 x 512 x {args.slices}, 2 layers, "
              f".seg.nrrd; {size_mb:.0f} MB on disk), written in {time.perf_counter() - start:.0f} s")
        run_pool(read_patient, pairs, 1)  # warm-up: every file in the page cache

        registrations = {"both": (True, False), "on": (True,), "off": (False,)}[args.registration]
        print(f"\n{'workers':>7}  {'registration':>12}  {'read p/s':>9}  {'compute p/s':>11}  {'batch p/s':>9}  "
              f"{'batch/read':>10}  {'batch/compute':>13}")
        for workers in (1, 2):
            read_seconds = timed(run_pool, read_patient, pairs, workers)
            for register in registrations:
                jobs = [PatientJob(f"P{n:03d}", baseline, followup, register=register)
                        for n, (baseline, followup) in enumerate(pairs, start=1)]
                compute_seconds = timed(run_pool, process_patient, jobs, workers)
                batch_seconds = timed(run_cohort, manifest, folder / f"results-{workers}-{register}.csv",
                                      folder / f"lesions-{workers}-{register}.csv", workers=workers,
                                      register=register, overwrite=True)
                rates = [args.patients / seconds for seconds in (read_seconds, compute_seconds, batch_seconds)]
                print(f"{workers:>7}  {'on' if register else 'off':>12}  {rates[0]:>9.1f}  {rates[1]:>11.1f}  "
                      f"{rates[2]:>9.1f}  {rates[2] / rates[0]:>9.0%}  {rates[2] / rates[1]:>12.0%}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
