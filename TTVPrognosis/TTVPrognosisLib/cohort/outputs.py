"""The output files of a run: checked before anything runs, and written safely.

It is its own module because the CLI checks the outputs before it reads the manifest, and the journal and the
runner both write beside the results table: an earlier run's tables or the manifest are never overwritten by
mistake, a killed run's temporary files are removed, and a failed write becomes a message for the user.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from ..errors import InputError
from ..formats.io import require_writable_folder


def check_outputs(output: str | os.PathLike, lesions_output: str | os.PathLike | None = None, resume: bool = False,
                  overwrite: bool = False, manifest: str | os.PathLike | None = None) -> None:
    """Refuse to overwrite an earlier run's tables unless told to resume it or overwrite it, and never
    write over the ``manifest``."""
    output = Path(output)
    lesions_output = Path(lesions_output) if lesions_output is not None else None
    if resume and overwrite:
        raise InputError("Choose either resume (continue the run in the output file) or overwrite (start again), "
                         "not both.")
    for path in (output, lesions_output):
        if manifest is not None and path is not None and path.resolve() == Path(manifest).resolve():
            raise InputError(f"'{path}' is the manifest; choose another name for the output table.")
    if lesions_output is not None and output.resolve() == lesions_output.resolve():
        raise InputError(f"The results and the lesion table would both be written to '{output}'; give them "
                         f"different names.")
    for path in (output, lesions_output):
        if path is None:
            continue
        if path.is_dir():
            raise InputError(f"'{path}' is a folder; give a file name for the table, e.g. '{path / 'results.csv'}'.")
        if path.exists() and not resume and not overwrite:
            raise InputError(f"'{path}' already exists. Resume that run (--resume; finished patients are kept) or "
                             f"replace it (--overwrite).")
        require_writable_folder(path)


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files an earlier, killed run left beside ``path`` (named as ``io._atomic_write`` names them)."""
    suffix = "".join(path.suffixes[-2:]) or ".tmp"
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}$")
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            if pattern.match(candidate.name) and candidate.is_file():
                candidate.unlink()


@contextlib.contextmanager
def _writing(path: Path):
    """A failed write (disk full, folder made read-only during the run) as a message for the user."""
    try:
        yield
    except OSError as error:
        raise InputError(f"Could not write the results beside '{path}' ({error.strerror or error}). Patients "
                         f"finished before are kept; free space or fix the folder, then run again with "
                         f"--resume.") from error
