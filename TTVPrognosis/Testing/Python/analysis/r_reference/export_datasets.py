"""Write lifelines' bundled Rossi, lung and GBSG2 data sets as CSV for make_reference.R.

Usage: python export_datasets.py FOLDER   (then: Rscript make_reference.R FOLDER > reference.csv)
"""

from __future__ import annotations

import sys
from pathlib import Path


def export(folder: Path) -> None:
    from lifelines.datasets import load_gbsg2, load_lung, load_rossi

    folder.mkdir(parents=True, exist_ok=True)
    load_rossi().to_csv(folder / "rossi.csv", index=False)
    load_lung().to_csv(folder / "lung.csv", index=False)
    load_gbsg2().to_csv(folder / "gbsg2.csv", index=False)


if __name__ == "__main__":
    export(Path(sys.argv[1]))
