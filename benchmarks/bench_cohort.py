"""Throughput of ``ttvprognosis batch`` against the floor of only reading the files, with 1 and 2 workers.

Cohort: 100 synthetic patients, each a baseline and a follow-up Slicer segmentation (.seg.nrrd, gzip) of a
clinical size (512 x 512 x 100 voxels, 0.78 x 0.78 x 2.5 mm; a liver layer and a lesion layer with five
lesions, the follow-up 20 % smaller). Ten distinct patients are generated and copied to make 100, so the
set-up stays short; every patient has its own files and every run reads all 200 of them. There are no CTs,
so the read floor and the batch read exactly the same files: the two segmentations of every patient.

Follow-ups (``--followup``):
  aligned   the follow-up on the baseline's grid with the same liver: the liver-mask registration
            finds the liver already aligned and takes its shortcut (no optimisation; registration.py)
  moved     (default) the follow-up scanned on another grid (0.82 x 0.82 x 3 mm), the patient turned (up to 3 degrees
            about R and A, 10 about S) and shifted (up to 20 mm), the liver a little smaller: the
            registration runs its optimisation, as it will on real pairs
Measured for 1 worker (in-process) and 2 workers (process pool) after a warm-up read of every file (all
files are in the page cache, as on a second pass over a cohort). Every process, the floor's included, keeps
freed memory for reuse as the batch's workers do (allocator.py), so the floor is the fastest reading we have:
  read      only reading both segmentations of every patient (io.read_segmentation): the floor
  slicerio  the same files read with slicerio (voxels by pynrrd), the libraries a script of one's own would use:
            a peer, shown for scale; the target is judged against our own, faster reading
  compute   the same work as the batch per patient (read, measure, compare, prognosis, flatten) in a bare
            loop / pool.map, without manifest, tables or CSV writing: what the batch machinery adds on top
  batch     cohort.run_cohort on the manifest, writing the results and lesion tables
The per-patient work is run with registration (what ``compare`` and ``batch`` do by default: the two
liver masks are registered before lesion matching) and without (``--no-registration``).
Each round times read, slicerio, batch and compute back to back, for each setting; the table shows the medians over
``--rounds`` rounds, and batch/read is the median of the rounds' own ratios, so that load from other
programs, which comes and goes, weighs on both sides of a ratio alike. The load average is printed, and
"CPU batch/read" compares the CPU seconds that the read floor and the batch spent (this process and its
workers), which other programs' load hardly changes: a cross-check of the wall-clock ratio on a busy machine.
Target (issue 6): batch >= 80 % of the read-only throughput. With registration both on and off, the 1-worker
rows are also broken down per patient (from the medians): reading, the work without registration, the
registration (compute with it minus compute without), against what the 80 % target leaves beyond reading.

Run: .venv/bin/python benchmarks/bench_cohort.py [--patients 100] [--slices 100] [--registration both|on|off]
     [--followup aligned|moved] [--rounds 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from TTVPrognosisLib.allocator import reuse_freed_memory
from TTVPrognosisLib.cohort.patient import PatientJob, process_patient
from TTVPrognosisLib.cohort.pool import prepare_worker
from TTVPrognosisLib.cohort.runner import run_cohort
from TTVPrognosisLib.formats.demo_data import axis_aligned_geometry, ellipsoid_mask, rigid_ras
from TTVPrognosisLib.formats.io import read_segmentation, write_segmentation
from TTVPrognosisLib.formats.segments import LabelVolume, Segment
from TTVPrognosisLib.geometry import Geometry

SPACING_MM = (0.78, 0.78, 2.5)
MOVED_SPACING_MM = (0.82, 0.82, 3.0)
LIVER_CENTRE_RAS = np.array([60.0, 20.0, 0.0])
LIVER_RADII_MM = np.array([95.0, 80.0, 75.0])
MOVED_LIVER_SCALE = np.array([0.97, 1.0, 0.98])
LESION_COUNT = 5
DISTINCT = 10


def write_cohort(folder: Path, patients: int, slices: int, followup: str = "aligned") -> Path:
    """Segmentations of ``DISTINCT`` patients, copied to make ``patients``; returns the manifest."""
    geometry = axis_aligned_geometry((slices, 512, 512), SPACING_MM)
    liver = ellipsoid_mask(geometry, LIVER_CENTRE_RAS, LIVER_RADII_MM)
    if followup == "moved":
        moved_shape = (round(slices * SPACING_MM[2] / MOVED_SPACING_MM[2]), 480, 480)
        followup_grid = axis_aligned_geometry(moved_shape, MOVED_SPACING_MM)
        followup_liver = ellipsoid_mask(followup_grid, LIVER_CENTRE_RAS, LIVER_RADII_MM * MOVED_LIVER_SCALE)
    else:
        followup_grid, followup_liver = geometry, liver
    segments = [Segment("Liver", "Liver", 0, 1)] + [Segment(f"Lesion_{n}", f"Lesion {n}", 1, n)
                                                    for n in range(1, LESION_COUNT + 1)]
    rng = np.random.default_rng(6)
    data = folder / "data"
    data.mkdir(parents=True)
    for index in range(DISTINCT):
        centres = LIVER_CENTRE_RAS + rng.uniform(-40.0, 40.0, (LESION_COUNT, 3)) * [1.0, 1.0, 0.6]
        radii = rng.uniform(5.0, 25.0, (LESION_COUNT, 3))
        placement = rigid_ras(rng.uniform(-1.0, 1.0, 3) * [3.0, 3.0, 10.0], rng.uniform(-20.0, 20.0, 3))
        for name, scale, grid, organ in (("baseline", 1.0, geometry, liver),
                                         ("followup", 0.8, followup_grid, followup_liver)):
            lesions = np.zeros(grid.shape_kji, dtype=np.uint8)
            for number in range(LESION_COUNT):
                lesions[ellipsoid_mask(grid, centres[number], radii[number] * scale) & organ] = number + 1
            if name == "followup" and followup == "moved":
                grid = Geometry(placement @ grid.ijk_to_ras, grid.shape_kji)  # the patient lies differently
            volume = LabelVolume([organ.astype(np.uint8), lesions], grid, segments, f"patient {index}")
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


def read_patient_slicerio(paths: tuple[str, str]) -> int:
    """The peer: read both segmentations with slicerio (segment metadata and voxels; nothing else)."""
    import slicerio

    return sum(int(slicerio.read_segmentation(path)["voxels"].shape[0]) for path in paths)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (joined) worker processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed(function, *args, **kwargs) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    function(*args, **kwargs)
    return time.perf_counter() - start, cpu_seconds() - start_cpu


def run_pool(function, items, workers: int) -> None:
    if workers == 1:
        for item in items:
            function(item)
        return
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=prepare_worker) as pool:
        list(pool.map(function, items))


def ratio(times: dict, first: str, second: str, cpu: bool = False) -> float:
    """Median over rounds of time(first) / time(second), i.e. throughput(second) / throughput(first)."""
    which = 1 if cpu else 0
    return statistics.median(one[which] / two[which] for one, two in zip(times[first], times[second]))


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def print_breakdown(with_registration: dict[str, float], without: dict[str, float]) -> None:
    """Milliseconds per patient (1 worker) of each part, and what the 80 % target leaves beyond reading."""
    read_ms = 1000.0 / statistics.mean([with_registration["read"], without["read"]])
    work_ms = 1000.0 / without["compute"] - read_ms
    registration_ms = 1000.0 / with_registration["compute"] - 1000.0 / without["compute"]
    print(f"\n1 worker, per patient: reading {read_ms:.0f} ms; measuring, matching and reporting {work_ms:.0f} ms; "
          f"registering the liver masks {registration_ms:.0f} ms.\nThe 80 % target leaves {read_ms / 4:.0f} ms "
          f"beyond reading (a quarter of the reading time).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--registration", choices=("both", "on", "off"), default="both")
    parser.add_argument("--followup", choices=("aligned", "moved"), default="moved")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; medians are shown (default 3)")
    parser.add_argument("--keep", metavar="DIR", help="write the cohort here and keep it (default: a temp folder)")
    args = parser.parse_args()
    reuse_freed_memory()  # the in-process (1 worker) runs; pools get it from prepare_worker

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-cohort-"))
    try:
        start = time.perf_counter()
        manifest = write_cohort(folder, args.patients, args.slices, args.followup)
        data = folder / "data"
        pairs = [(str(data / f"P{n:03d}_baseline.seg.nrrd"), str(data / f"P{n:03d}_followup.seg.nrrd"))
                 for n in range(1, args.patients + 1)]
        size_mb = sum(path.stat().st_size for path in data.iterdir()) / 1e6
        print(f"Cohort: {args.patients} patients x 2 segmentations (512 x 512 x {args.slices}, 2 layers, "
              f".seg.nrrd; {size_mb:.0f} MB on disk; follow-ups {args.followup}), written in "
              f"{time.perf_counter() - start:.0f} s; {os.cpu_count()} CPUs")
        run_pool(read_patient, pairs, 1)  # warm-up: every file in the page cache

        registrations = {"both": (True, False), "on": (True,), "off": (False,)}[args.registration]
        print(f"Medians of {args.rounds} rounds (patients per second)\n")
        print(f"{'workers':>7}  {'registration':>12}  {'read p/s':>9}  {'slicerio p/s':>12}  {'compute p/s':>11}  "
              f"{'batch p/s':>9}  {'batch/read':>10}  {'batch/slicerio':>14}  {'batch/compute':>13}  "
              f"{'CPU batch/read':>14}  {'load before/after':>17}")
        rates_of: dict[tuple[int, bool], dict[str, float]] = {}
        for workers in (1, 2):
            for register in registrations:
                before = load()
                times: dict[str, list[tuple[float, float]]] = {"read": [], "slicerio": [], "compute": [], "batch": []}
                jobs = [PatientJob(f"P{n:03d}", baseline, followup, register=register)
                        for n, (baseline, followup) in enumerate(pairs, start=1)]
                for _round in range(args.rounds):
                    times["read"].append(timed(run_pool, read_patient, pairs, workers))
                    times["slicerio"].append(timed(run_pool, read_patient_slicerio, pairs, workers))
                    times["batch"].append(timed(run_cohort, manifest, folder / f"results-{workers}-{register}.csv",
                                                folder / f"lesions-{workers}-{register}.csv", workers=workers,
                                                register=register, overwrite=True))
                    times["compute"].append(timed(run_pool, process_patient, jobs, workers))
                rates = {name: args.patients / statistics.median(wall for wall, _ in values)
                         for name, values in times.items()}
                rates_of[workers, register] = rates
                print(f"{workers:>7}  {'on' if register else 'off':>12}  {rates['read']:>9.1f}  "
                      f"{rates['slicerio']:>12.1f}  {rates['compute']:>11.1f}  {rates['batch']:>9.1f}  "
                      f"{ratio(times, 'read', 'batch'):>9.0%}  {ratio(times, 'slicerio', 'batch'):>13.0%}  "
                      f"{ratio(times, 'compute', 'batch'):>12.0%}  {ratio(times, 'read', 'batch', cpu=True):>13.0%}  "
                      f"{before:>8} / {load()}", flush=True)
        if (1, True) in rates_of and (1, False) in rates_of:
            print_breakdown(rates_of[1, True], rates_of[1, False])
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
