"""File in, results out: the steps the CLI, the batch and the demo share.

Reading is kept here (not in the measuring code) so that measuring stays a pure function of arrays and
the same checks (reference image geometry) run on every path that starts from files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .geometry import reference_grid_warnings
from .io import read_image, read_segmentation
from .response import Comparison, compare
from .segments import LabelVolume, names_matching, require_segments_named
from .volumetry import Measurement, measure


def load_segmentation(segmentation_path: str | os.PathLike, image_path: str | os.PathLike | None = None
                      ) -> LabelVolume:
    """Read a segmentation; with its CT, also check that both belong to the same scan (warnings kept)."""
    volume = read_segmentation(segmentation_path)
    if image_path is not None:
        image = read_image(image_path)
        volume.warnings.extend(reference_grid_warnings(volume.geometry, image.geometry,
                                                       f"Segmentation '{segmentation_path}'", f"image '{image_path}'"))
    return volume


def measure_file(segmentation_path: str | os.PathLike, image_path: str | os.PathLike | None = None,
                 exclude: Sequence[str] = (), liver: Sequence[str] = (), keep_labels: bool = False) -> Measurement:
    """Read a segmentation (and optionally its CT) and measure it."""
    volume = load_segmentation(segmentation_path, image_path)
    return measure(volume, exclude=exclude, liver=liver, keep_labels=keep_labels)


def compare_volumes(baseline: LabelVolume, followup: LabelVolume, exclude: Sequence[str] = (),
                    liver: Sequence[str] = (), keep_labels: bool = False) -> Comparison:
    """Measure both time points and compare them.

    A segment named in ``exclude``/``liver`` may be missing at one time point (a lesion that disappeared)
    but must exist at one of them.
    """
    require_segments_named([baseline, followup], exclude, "--exclude-segment")
    require_segments_named([baseline, followup], liver, "--liver-segment")
    measurements = [measure(volume, exclude=names_matching(volume, exclude), liver=names_matching(volume, liver),
                            keep_labels=keep_labels) for volume in (baseline, followup)]
    return compare(*measurements)


def compare_files(baseline_path: str | os.PathLike, followup_path: str | os.PathLike,
                  baseline_image: str | os.PathLike | None = None, followup_image: str | os.PathLike | None = None,
                  exclude: Sequence[str] = (), liver: Sequence[str] = ()) -> Comparison:
    """Read both time points (and their CTs when given) and compare them."""
    return compare_volumes(load_segmentation(baseline_path, baseline_image),
                           load_segmentation(followup_path, followup_image), exclude=exclude, liver=liver)
