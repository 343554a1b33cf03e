"""The Extensions Index description-file checks (Slicer/ExtensionsIndex scripts/check_description_files.py),
applied offline to this repository's metadata by packaging/check_extension_index.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def checker():
    path = ROOT / "packaging" / "check_extension_index.py"
    spec = importlib.util.spec_from_file_location("check_extension_index", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_repository_passes_the_extensions_index_checks():
    assert checker().problems() == []


def test_the_checks_catch_a_bad_entry(tmp_path):
    entry = json.loads((ROOT / "packaging" / "TTVPrognosis.json").read_text())
    entry.update({"category": "Tumours", "scm_url": "ftp://example.org/TTVPrognosis", "colour": "red"})
    bad = tmp_path / "TTVPrognosis.json"
    bad.write_text(json.dumps(entry))
    found = " ".join(checker().problems(entry_path=bad))
    for expected in ("'colour' is not allowed", "category 'Tumours'", "not git:// or https://", "should start with"):
        assert expected in found
