"""The Slicer Extensions Index checks, applied offline to this repository and its catalog entry.

Written after reading Slicer/ExtensionsIndex ``scripts/check_description_files.py`` and Slicer's
``Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json``: the same rules, without the network (URLs of
this repository's own files are checked against the files here, as the index would download them once pushed).
Also the metadata Slicer's packaging reads from the top-level CMakeLists.txt (licence and readme files, so it
does not fall back to Slicer's own). Run: python packaging/check_extension_index.py (exit 1 on a problem).
"""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "packaging" / "TTVPrognosis.json"
SCHEMA_KEYS = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
               "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int}
REQUIRED_KEYS = ("$schema", "category", "scm_url")
ACCEPTED_CATEGORIES = {"Analysis", "Converters", "DICOM", "Exporter", "Filtering", "Informatics", "Quantification",
                       "Registration", "Segmentation", "Utilities"}  # those of the index that could fit this tool
LICENSE_NAMES = ("LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING", "COPYING.txt")
REPOSITORY_PREFIXES = ("Slicer", "Slicer-", "Slicer_", "SlicerExtension-", "SlicerExtension_")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")
SIZE_LIMIT_MB = 100


def cmake_setting(text: str, name: str) -> str | None:
    found = re.search(rf'set\s*\({name}\s+"?([^")]*)"?\s*\)', text, re.IGNORECASE)
    return found.group(1).strip() if found else None


def repository_file(url: str, scm_url: str) -> Path | None:
    """This repository's file that a raw.githubusercontent.com URL of its main branch names (None otherwise)."""
    owner_repo = urllib.parse.urlsplit(scm_url).path.strip("/").removesuffix(".git")
    prefix = f"https://raw.githubusercontent.com/{owner_repo}/"
    if not url.startswith(prefix):
        return None
    return ROOT / url[len(prefix):].split("/", 1)[1]


def tracked_files(root: Path) -> list[Path]:
    """What a clone holds: the files git tracks (the working tree's .venv and outputs are not in a clone)."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False)
    names = listed.stdout.decode().split("\0") if listed.returncode == 0 else []
    return [root / name for name in names if name and (root / name).is_file()]


def problems(root: Path = ROOT, entry_path: Path = ENTRY) -> list[str]:
    found = []
    raw = entry_path.read_bytes()
    if b"\r" in raw:
        found.append(f"{entry_path.name}: non-LF line endings")
    entry = json.loads(raw)
    extension_name = entry_path.stem
    for key in REQUIRED_KEYS:
        if key not in entry:
            found.append(f"catalog entry: '{key}' is missing")
    for key, value in entry.items():
        if key not in SCHEMA_KEYS:
            found.append(f"catalog entry: '{key}' is not allowed by the schema")
        elif not isinstance(value, SCHEMA_KEYS[key]) or (key == "tier" and not 1 <= value <= 5):
            found.append(f"catalog entry: '{key}' has an invalid value {value!r}")
    if entry.get("category") not in ACCEPTED_CATEGORIES:
        found.append(f"category '{entry.get('category')}' is not an accepted category")
    scm_url = entry.get("scm_url", "")
    if urllib.parse.urlsplit(scm_url).scheme not in ("git", "https"):
        found.append(f"scm_url '{scm_url}' is not git:// or https://")
    repository = Path(urllib.parse.urlsplit(scm_url).path).stem
    if not repository.startswith(REPOSITORY_PREFIXES):
        found.append(f"repository name '{repository}' should start with 'Slicer'")
    if extension_name.lower().startswith("slicer"):
        found.append(f"extension name '{extension_name}' should not start with 'Slicer'")
    cmake = (root / "CMakeLists.txt").read_text()
    project = re.search(r"project\s*\(\s*([^\s)]+)", cmake, re.IGNORECASE)
    if not project or project.group(1).strip("\"'") != extension_name:
        found.append(f"CMakeLists.txt project() is not '{extension_name}'")
    if cmake_setting(cmake, "EXTENSION_CATEGORY") != entry.get("category"):
        found.append("EXTENSION_CATEGORY differs from the catalog entry's category")
    for name in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION"):
        if not cmake_setting(cmake, name):
            found.append(f"{name} is not set")
    screenshots = (cmake_setting(cmake, "EXTENSION_SCREENSHOTURLS") or "").split()
    urls = [cmake_setting(cmake, "EXTENSION_ICONURL") or "", *screenshots]
    if len(urls) < 2:
        found.append("EXTENSION_ICONURL and EXTENSION_SCREENSHOTURLS must both be set")
    for url in urls:
        local = repository_file(url, scm_url)
        if not url.startswith("http") or not url.lower().endswith(IMAGE_SUFFIXES):
            found.append(f"'{url}' is not an http(s) URL of an image")
        elif local is None or not local.is_file():
            found.append(f"'{url}' names no file of this repository")
        elif local.read_bytes()[:8] not in (b"\x89PNG\r\n\x1a\n",) and local.suffix == ".png":
            found.append(f"'{local}' is not a PNG file")
    for name, expected in (("EXTENSION_LICENSE_FILE", "LICENSE"), ("EXTENSION_README_FILE", "README.md")):
        value = cmake_setting(cmake, name) or ""
        if not value.endswith("/" + expected) or not (root / expected).is_file():
            found.append(f"{name} must name the repository's {expected}")
    if not any((root / name).is_file() for name in LICENSE_NAMES):
        found.append("no licence file at the repository root")
    size_mb = sum(path.stat().st_size for path in tracked_files(root)) / 2 ** 20
    if size_mb > SIZE_LIMIT_MB:
        found.append(f"repository is {size_mb:.0f} MB, over the index's {SIZE_LIMIT_MB} MB")
    return found


if __name__ == "__main__":
    listed = problems()
    print("\n".join(listed) if listed else "Extensions Index checks passed.")
    sys.exit(1 if listed else 0)
