"""What a cohort table was made from: ``<results stem>.provenance.json`` beside the results.

A table without its provenance cannot be checked later. The file records the tool version, the survival
model (id and the sha256 of its file), the run's settings, the manifest and every input file with its size
and sha256 (a DICOM folder: the sha256 over its files' names and checksums), and the population the
survival figures are for. It is rewritten at the end of every run (a resumed run lists the inputs as they
are then).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..formats.io import _atomic_write

PROVENANCE_SUFFIX = ".provenance.json"
CHUNK_BYTES = 1 << 20


def provenance_path(results: str | os.PathLike) -> Path:
    """``results.csv`` -> ``results.provenance.json``."""
    path = Path(results)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(stem + PROVENANCE_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_record(path: str | os.PathLike) -> dict:
    """Size and sha256 of a file, or of a folder's files (names and checksums, in sorted order)."""
    target = Path(path)
    try:
        if target.is_dir():
            files = sorted(item for item in target.rglob("*") if item.is_file())
            digest = hashlib.sha256()
            for item in files:
                digest.update(f"{item.relative_to(target).as_posix()}\0{file_sha256(item)}\n".encode())
            return {"path": str(target), "kind": "folder", "files": len(files),
                    "bytes": sum(item.stat().st_size for item in files), "sha256": digest.hexdigest()}
        return {"path": str(target), "kind": "file", "bytes": target.stat().st_size, "sha256": file_sha256(target)}
    except OSError as error:
        return {"path": str(target), "error": error.strerror or str(error)}


def provenance_document(manifest_path: str | os.PathLike, inputs: Sequence[tuple[str, str, str]],
                        settings: Mapping, tables: Mapping[str, str], counts: Mapping[str, int],
                        known: Mapping[str, dict] | None = None) -> dict:
    """``inputs``: (patient_id, manifest column, resolved path) of every input file the run used; ``known``:
    records already made for some paths (by the workers), so those files are not read again."""
    from .. import __version__
    from ..prognosis.model import POPULATION, default_model_path, load_model

    model = load_model()
    cache = dict(known or {})
    records = []
    for patient_id, column, path in inputs:
        if path not in cache:
            cache[path] = input_record(path)
        records.append({"patient_id": patient_id, "column": column, **cache[path]})
    return {
        "tool": "ttvprognosis",
        "version": __version__,
        "python": platform.python_version(),
        "written_at_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"model_id": model.model_id, "file": default_model_path().name,
                  "sha256": file_sha256(default_model_path())},
        "population": POPULATION,
        "settings": dict(settings),
        "tables": dict(tables),
        "patients": dict(counts),
        "manifest": input_record(manifest_path),
        "inputs": records,
    }


def write_provenance(results: str | os.PathLike, document: Mapping) -> Path:
    path = provenance_path(results)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    return path
