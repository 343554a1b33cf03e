"""Names of the values of a label image, where its maker wrote them: TotalSegmentator's NIfTI header extension
and nnU-Net's ``dataset.json``. With names, segment roles come from them (``roles.py``) instead of "Label N".

- **TotalSegmentator** (``--ml``, v2) stores its class names in a NIfTI-1 header extension (code 0) holding a
  CARET/GIFTI-style XML label table: ``<Label Key="5" ...><![CDATA[liver]]></Label>`` (see its
  ``nifti_ext_header.py``). The extension is read here from the header bytes, without nibabel. A table whose
  names are placeholders ("L1", "L2"...) has no names: the class map of the installed ``totalsegmentator``
  package is used when it settles every value, else the file is refused (its labels cannot be told apart).
- **nnU-Net** keeps label names in ``dataset.json`` beside the predictions (``nnUNetv2_predict`` copies it
  there) or one level above ``labelsTr``/``labelsTs``: v2 ``"labels": {"background": 0, "liver": 1, ...}``,
  v1 / Medical Segmentation Decathlon ``"labels": {"0": "background", "1": "liver", "2": "cancer"}``.
  Region-based labels (a name for a list of values) do not name single values and are not used.

Without names, a plain {1, 2} label map is recognised as the LiTS convention from its voxels
(``measure/role_checks.py``).
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from ..errors import InputError

MAX_HEADER_BYTES = 64 * 1024 * 1024  # extensions beyond this are not label tables
MAX_DATASET_JSON_BYTES = 10 * 1024 * 1024
PLACEHOLDER_NAME = re.compile(r"^L\d+$")


def _nifti_header_bytes(path: Path) -> bytes:
    """The bytes before the voxel data of a NIfTI-1/2 file (header and extensions), or b"" if it is not one."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(544)
            if len(head) < 348:
                return b""
            for endian in ("<", ">"):
                size = struct.unpack(endian + "i", head[:4])[0]
                if size == 348:
                    offset = int(struct.unpack(endian + "f", head[108:112])[0])
                    break
                if size == 540:
                    offset = struct.unpack(endian + "q", head[168:176])[0]
                    break
            else:
                return b""
            if offset <= len(head) or offset > MAX_HEADER_BYTES:
                return head[:offset] if 0 < offset <= len(head) else b""
            return head + handle.read(offset - len(head))
    except (OSError, EOFError, struct.error, ValueError):
        return b""  # damaged files are refused by the image reader itself


def nifti_extensions(path: Path) -> list[tuple[int, bytes]]:
    """(code, content) of each NIfTI header extension of ``path``; [] when there are none."""
    data = _nifti_header_bytes(path)
    if len(data) < 352:
        return []
    endian = "<" if struct.unpack("<i", data[:4])[0] in (348, 540) else ">"
    start = 352 if struct.unpack(endian + "i", data[:4])[0] == 348 else 544
    if data[start - 4] == 0:  # the "extension" flag bytes: no extensions
        return []
    extensions = []
    position = start
    while position + 8 <= len(data):
        size, code = struct.unpack(endian + "ii", data[position:position + 8])
        if size < 8 or position + size > len(data):
            break
        extensions.append((code, data[position + 8:position + size]))
        position += size
    return extensions


def _caret_label_table(content: bytes) -> dict[int, str] | None:
    """Key -> name from a CARET/GIFTI label table (what TotalSegmentator writes), or None if it is not one."""
    text = content.rstrip(b"\x00 \t\r\n").decode("utf-8", errors="replace")
    if "<LabelTable" not in text:
        return None
    try:
        root = ElementTree.fromstring(text.strip())
    except ElementTree.ParseError:
        return None
    names = {}
    for label in root.iter("Label"):
        key = label.get("Key")
        if key is not None and key.strip().lstrip("-").isdigit():
            names[int(key)] = (label.text or "").strip()
    return names


def totalsegmentator_names(path: Path, present: set[int]) -> tuple[dict[int, str], str] | None:
    """Names of the label values of a TotalSegmentator multilabel NIfTI, and where they came from."""
    for _, content in nifti_extensions(path):
        table = _caret_label_table(content)
        if table is None:
            continue
        named = {value: name for value, name in table.items() if name and not PLACEHOLDER_NAME.match(name)}
        if named:
            return named, "the label table in its NIfTI header (TotalSegmentator)"
        return _installed_class_map(path, present)
    return None


def _installed_class_map(path: Path, present: set[int]) -> tuple[dict[int, str], str]:
    """Names from the installed TotalSegmentator's class maps when they agree on every present value."""
    try:
        from totalsegmentator.map_to_binary import class_map
    except ImportError:
        raise InputError(f"'{path.name}' has a TotalSegmentator label table without names, and TotalSegmentator "
                         f"is not installed here to look them up. The labels cannot be told apart (liver, "
                         f"tumour, other organs); give TotalSegmentator's per-structure folder instead, or a "
                         f"segmentation with named segments (e.g. saved from Slicer).") from None
    candidates = {task: names for task, names in class_map.items() if present <= set(names)}
    settled = {value: {candidates[task][value] for task in candidates} for value in present}
    if candidates and all(len(names) == 1 for names in settled.values()):
        return {value: names.pop() for value, names in settled.items()}, \
            f"the class map of the installed TotalSegmentator ({', '.join(sorted(candidates))})"
    raise InputError(f"'{path.name}' has a TotalSegmentator label table without names, and the installed "
                     f"TotalSegmentator's class maps do not settle them (tasks that fit: "
                     f"{', '.join(sorted(candidates)) or 'none'}). Give the per-structure folder instead, or a "
                     f"segmentation with named segments.")


def _dataset_json_paths(path: Path) -> list[Path]:
    folders = [path.parent]
    if path.parent.name.lower().startswith("labels"):  # nnU-Net raw data: DatasetXXX/labelsTr/case.nii.gz
        folders.append(path.parent.parent)
    return [folder / "dataset.json" for folder in folders if (folder / "dataset.json").is_file()]


def nnunet_names(path: Path) -> tuple[dict[int, str], str, list[str]] | None:
    """Names of label values from an nnU-Net / Decathlon ``dataset.json`` near ``path``, its path, warnings."""
    for candidate in _dataset_json_paths(path):
        warnings: list[str] = []
        try:
            if candidate.stat().st_size > MAX_DATASET_JSON_BYTES:
                continue
            labels = json.loads(candidate.read_text(encoding="utf-8")).get("labels")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            warnings.append(f"'{candidate}' could not be read as an nnU-Net dataset.json; its label names were "
                            f"not used.")
            return {}, str(candidate), warnings
        if not isinstance(labels, dict):
            continue
        names: dict[int, str] = {}
        for key, value in labels.items():
            if isinstance(value, int) and not isinstance(value, bool):  # v2: name -> value
                names[value] = str(key)
            elif isinstance(value, str) and str(key).strip().isdigit():  # v1 / Decathlon: "value" -> name
                names[int(key)] = value
            elif isinstance(value, list):  # region-based training: a name for several values
                warnings.append(f"'{candidate}' uses region-based labels ('{key}': {value}); they do not name "
                                f"single values, so its names were not used.")
                return {}, str(candidate), warnings
        return {value: name for value, name in names.items() if value != 0}, str(candidate), warnings
    return None


def label_names(path: Path, present: set[int]) -> tuple[dict[int, str], list[str]]:
    """Names for the label values ``present`` in the label image at ``path`` (possibly none) and warnings."""
    if path.is_dir():
        return {}, []
    found = None
    if path.name.lower().endswith((".nii", ".nii.gz")):
        found = totalsegmentator_names(path, present)
    warnings: list[str] = []
    if found is None:
        nnunet = nnunet_names(path)
        if nnunet is not None:
            names, source, warnings = nnunet
            found = (names, f"'{source}' (nnU-Net)") if names else None
    if found is None:
        return {}, warnings
    names, source = found
    missing = sorted(present - set(names))
    if missing:
        warnings.append(f"'{path.name}': label value(s) {', '.join(map(str, missing))} have no name in {source}; "
                        f"they are named 'Label N'.")
    used = {value: name for value, name in names.items() if value in present}
    if used:
        warnings.append(f"'{path.name}': segment names read from {source}.")
    return used, warnings
