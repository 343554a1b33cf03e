"""Where a report's numbers come from: input files and their SHA-256, tool version, date, settings.

A report must say exactly which files it was made from, so that a number in it can be traced back and a
later report on changed files is told apart. Only file names are shown unless identifiers are asked for
(folder names often are patient names or hospital numbers); checksums identify the files all the same.
The date comes from an explicit value, else ``SOURCE_DATE_EPOCH`` (the reproducible-builds convention),
else the clock: with a fixed date the same inputs give the same report bytes.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import InputError

CHUNK_BYTES = 1 << 20
IDENTIFYING_DICOM_FIELDS = (("PatientName", "Patient name"), ("PatientID", "Patient ID"),
                            ("PatientBirthDate", "Birth date"), ("AccessionNumber", "Accession number"),
                            ("StudyDate", "Study date"))


@dataclass(frozen=True)
class InputFile:
    """One input: its role (e.g. "Baseline segmentation"), its name as shown, and its SHA-256."""

    role: str
    name: str
    sha256: str
    note: str = ""


@dataclass
class Provenance:
    """Everything the report's provenance section lists."""

    inputs: list[InputFile]
    tool_version: str
    date_utc: str
    settings: dict[str, str]
    identifiers: dict[str, str] = field(default_factory=dict)  # only with include_identifiers

    def rows(self) -> list[list[str]]:
        rows = [[item.role, item.name + (f" ({item.note})" if item.note else ""), item.sha256] for item in self.inputs]
        return rows


def report_date(explicit: str | None = None) -> datetime.datetime:
    """The report's date: ``explicit`` (ISO 8601, e.g. 2026-01-31 or 2026-01-31T10:00), SOURCE_DATE_EPOCH, now."""
    if explicit:
        try:
            value = datetime.datetime.fromisoformat(explicit)
        except ValueError:
            raise InputError(f"'{explicit}' is not a date: give it as 2026-01-31 or 2026-01-31T10:00 (UTC).") from None
        return value.replace(tzinfo=datetime.timezone.utc) if value.tzinfo is None else value
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise InputError(f"SOURCE_DATE_EPOCH='{epoch}' is not a number of seconds since 1970; fix or unset it."
                             ) from None
    return datetime.datetime.now(tz=datetime.timezone.utc).replace(microsecond=0)


def sha256_of(path: str | os.PathLike) -> tuple[str, str]:
    """SHA-256 of a file, or of a folder (every file's relative path and bytes, in sorted order); with a note."""
    target = Path(path)
    digest = hashlib.sha256()
    if target.is_dir():
        files = sorted(item for item in target.rglob("*") if item.is_file())
        for item in files:
            digest.update(item.relative_to(target).as_posix().encode("utf-8") + b"\0")
            _update(digest, item)
        return digest.hexdigest(), f"folder of {len(files)} files"
    if not target.is_file():
        raise InputError(f"'{target}' does not exist; it cannot be listed in the report's provenance.")
    _update(digest, target)
    return digest.hexdigest(), ""


def _update(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)


def describe_inputs(inputs: dict[str, str | os.PathLike | None], include_identifiers: bool = False) -> list[InputFile]:
    """Role -> path (None skipped) to listed inputs: the file name only, or the full path with identifiers."""
    listed = []
    for role, path in inputs.items():
        if path is None:
            continue
        checksum, note = sha256_of(path)
        name = str(Path(path).resolve()) if include_identifiers else Path(path).name
        listed.append(InputFile(role, name, checksum, note))
    return listed


def dicom_identifiers(path: str | os.PathLike | None) -> dict[str, str]:
    """Patient fields of the first DICOM file of a folder (only read when identifiers are asked for)."""
    if path is None or not Path(path).is_dir():
        return {}
    try:
        import pydicom
    except ImportError:
        return {}
    for item in sorted(Path(path).rglob("*")):
        if not item.is_file():
            continue
        try:
            dataset = pydicom.dcmread(item, stop_before_pixels=True)
        except Exception:  # not a DICOM file (e.g. DICOMDIR's neighbours); try the next one
            continue
        return {label: str(dataset.get(keyword, "")) for keyword, label in IDENTIFYING_DICOM_FIELDS
                if str(dataset.get(keyword, "")).strip()}
    return {}


def provenance(inputs: dict[str, str | os.PathLike | None], settings: dict[str, str],
               date: datetime.datetime, include_identifiers: bool = False,
               identifier_sources: tuple[str | os.PathLike | None, ...] = ()) -> Provenance:
    """The provenance section for these inputs and settings."""
    identifiers: dict[str, str] = {}
    if include_identifiers:
        for source in identifier_sources:
            identifiers = identifiers or dicom_identifiers(source)
    return Provenance(describe_inputs(inputs, include_identifiers), __version__,
                      date.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), dict(settings),
                      identifiers)
