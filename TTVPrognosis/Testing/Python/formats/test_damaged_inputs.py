"""No damaged or unusual input gives exit 0 with a TTV other than the truth (issue 13, "what it must show").

Each case of the corpus (damaged_corpus.py: writers and the oracle; damaged_cases.py: the damage) is
measured by the real command line, ``ttvprognosis measure FILE --json``, in this process. The oracle:

- exit 1 (refused) is acceptable unless the case is a valid file (``truth``), and its message must be a
  plain "Error: ..." sentence (never exit 3, "Internal error");
- exit 0 is acceptable only with the TTV of the known volume (relative 1e-5: NIfTI stores float32), or,
  for a flipped bit in an *uncompressed* header or voxel (``refuse_or_file``), with the TTV of what the
  damaged file says when decoded by an independent reader (pynrrd for NRRD, SimpleITK for NIfTI and
  MetaImage, pynrrd + slicerio for Slicer files): a flipped voxel is a different, valid file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading

import numpy as np
import pytest
from damaged_cases import damaged_cases
from damaged_corpus import Case, conventional_cases, truth_ttv_ml

from TTVPrognosisLib.cli import main

CASES = conventional_cases() + damaged_cases()
RELATIVE_TOLERANCE = 1e-5


def measure_json(path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["measure", str(path), "--json"])
    return code, out.getvalue(), err.getvalue()


def independent_ttv_ml(path) -> float | None:
    """TTV of what a file says, decoded without this package's readers; None when that reader fails."""
    try:
        if path.name.endswith(".seg.nrrd"):
            return _slicer_file_ttv(path)
        if path.name.endswith((".nrrd", ".nhdr")):
            return _nrrd_ttv(path)
        return _label_image_ttv(path)
    except Exception:  # the independent reader could not read it either
        return None


def _label_image_ttv(path) -> float:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    image = sitk.ReadImage(str(path))
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    voxel_mm3 = abs(np.linalg.det(direction @ np.diag(image.GetSpacing())))
    return np.count_nonzero(sitk.GetArrayFromImage(image)) * voxel_mm3 / 1000.0


def _nrrd_ttv(path) -> float:
    """pynrrd (ITK's NRRD reader has no bzip2)."""
    import nrrd

    voxels, header = nrrd.read(str(path))
    return np.count_nonzero(voxels) * abs(np.linalg.det(np.asarray(header["space directions"], dtype=float))) / 1000.0


def _slicer_file_ttv(path) -> float:
    import nrrd
    import slicerio

    metadata = slicerio.read_segmentation(str(path), skip_voxels=True)
    voxels, _ = nrrd.read(str(path), index_order="C")
    layers = [voxels] if voxels.ndim == 3 else [voxels[..., index] for index in range(voxels.shape[-1])]
    union = np.zeros(layers[0].shape, dtype=bool)
    for segment in metadata["segments"]:
        union |= layers[int(segment.get("layer", 0))] == int(segment.get("labelValue", 1))
    return np.count_nonzero(union) * abs(np.linalg.det(np.asarray(metadata["ijkToLPS"])[:3, :3])) / 1000.0


@contextlib.contextmanager
def fifo_watchdog(path, seconds: float = 20.0):
    """If a reader blocks on a FIFO, open its other end after ``seconds`` so the test fails instead of hanging."""
    done = threading.Event()

    def release() -> None:
        if not done.wait(seconds) and path.is_fifo():
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    watcher = threading.Thread(target=release, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


def test_corpus_covers_every_reader_and_kind_of_damage():
    names = " ".join(case.name for case in CASES)
    for needed in ("nrrd", "nifti", "metaimage", "seg.nrrd", "cut at", "flipped (header)", "flipped (data)",
                   "sizes", "appended", "two members", "fifo", "intensity image", "share an ID", "pixdim",
                   "TransformMatrix", "space direction"):
        assert needed in names, needed
    assert len(CASES) > 250


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_no_case_gives_exit_0_with_a_wrong_number(case: Case, tmp_path):
    path = case.build(tmp_path)
    with fifo_watchdog(path):
        code, out, err = measure_json(path)
    assert code in (0, 1), f"exit {code}: {err}"
    truth = case.truth_ml if case.truth_ml is not None else truth_ttv_ml()
    if code == 1:
        assert err.startswith("Error: ") and "Internal error" not in err and len(err) > 40, err
        assert case.expect != "truth", f"a valid file was refused: {err}"
        return
    ttv = json.loads(out)["ttv_ml"]
    assert case.expect != "refuse", f"accepted with TTV {ttv} mL (truth {truth}); it must be refused"
    if ttv == pytest.approx(truth, rel=RELATIVE_TOLERANCE):
        return
    assert case.expect == "refuse_or_file", f"TTV {ttv} mL, truth {truth} mL"
    independent = independent_ttv_ml(path)
    assert independent is not None and ttv == pytest.approx(independent, rel=RELATIVE_TOLERANCE), \
        f"TTV {ttv} mL: neither the truth ({truth}) nor what an independent reader makes of the file ({independent})"
