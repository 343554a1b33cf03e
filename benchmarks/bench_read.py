"""Time to read a 512 x 512 x 300 segmentation in each supported file format (reading only, no measuring).

The readers verify every byte (checksums, exact sizes, geometry; formats/integrity.py); this benchmark shows
what that costs. Case: bench_measure.py's liver and 25 lesions, written as a two-layer Slicer .seg.nrrd and
as one-layer label maps (liver 1, lesions 2..26) in .nrrd (gzip), .nii.gz and .mha (zlib). Each file is read
with ``read_segmentation``, median of several runs.

Run: .venv/bin/python benchmarks/bench_read.py [--repeats N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_measure import benchmark_case, median_seconds

from TTVPrognosisLib.formats.io import read_segmentation, write_image, write_segmentation


def write_files(folder: Path) -> dict[str, Path]:
    volume, lesions = benchmark_case()
    labels = np.where(lesions > 0, lesions + 1, volume.layers[0]).astype(np.uint8)
    paths = {"Slicer .seg.nrrd (2 layers)": folder / "case.seg.nrrd", "label map .nrrd": folder / "labels.nrrd",
             "label map .nii.gz": folder / "labels.nii.gz", "label map .mha": folder / "labels.mha"}
    write_segmentation(volume, paths["Slicer .seg.nrrd (2 layers)"])
    for name, path in paths.items():
        if name.startswith("label map"):
            write_image(labels, volume.geometry, path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(Path(folder))
        for name, path in paths.items():
            read_segmentation(path)  # warm the file cache and the imports
            seconds = median_seconds(lambda path=path: read_segmentation(path), args.repeats)
            print(f"  {name:<30} {path.stat().st_size / 1e6:6.2f} MB on disk  {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
