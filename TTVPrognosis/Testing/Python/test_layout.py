"""The package's layout by stage: data flows one way, modules stay small, only mrml/ talks to Slicer.

The stages follow the data flow of the design (inputs -> measurement -> comparison -> prognosis -> outputs);
a module may import from its own stage or an earlier one, never from a later one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2]
LIB_DIR = MODULE_DIR / "TTVPrognosisLib"
MAX_MODULE_LINES = 500

# Earlier stages first. Top-level modules are named by file; subpackages by folder.
STAGES: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors", "geometry", "allocator"),
    ("formats",),
    ("measure",),
    ("segment",),
    ("response",),
    ("prognosis",),
    ("report",),
    ("pipeline",),
    ("cohort",),
    ("analysis",),
    ("mrml",),
    ("cli", "cli_analysis", "cli_batch", "cli_reports", "__main__"),
)
RANK = {room: rank for rank, rooms in enumerate(STAGES) for room in rooms}
SLICER_MODULES = ("slicer", "vtk", "qt", "ctk")


def library_modules() -> list[Path]:
    return sorted(LIB_DIR.rglob("*.py"))


def room_of(path: Path) -> str:
    """The stage a source file belongs to: its subpackage, or its own name at the top level."""
    parts = path.relative_to(LIB_DIR).with_suffix("").parts
    return parts[0]


def package_of(path: Path) -> list[str]:
    parts = list(path.relative_to(LIB_DIR).with_suffix("").parts)
    return parts if parts[-1] == "__init__" and parts.pop() is not None else parts[:-1]


def imported_rooms(path: Path) -> set[str]:
    return rooms_imported_by(path.read_text(encoding="utf-8"), package_of(path))


def rooms_imported_by(source: str, package: list[str]) -> set[str]:
    """Rooms of TTVPrognosisLib a source imports, resolving relative imports against its package."""
    rooms = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:
                rooms.add(target[0])
            else:  # "from .. import x" at the top of the package names top-level rooms
                rooms |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("TTVPrognosisLib."):
            rooms.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            rooms |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("TTVPrognosisLib.")}
    return rooms - {"__version__"}


def imported_top_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_room_has_a_stage():
    rooms = {room_of(path) for path in library_modules()}
    assert rooms <= RANK.keys(), f"add these to STAGES in the right place: {sorted(rooms - RANK.keys())}"


@pytest.mark.parametrize("path", library_modules(), ids=lambda path: str(path.relative_to(LIB_DIR)))
def test_no_import_from_a_later_stage(path):
    own = room_of(path)
    later = {room for room in imported_rooms(path) if RANK.get(room, -1) > RANK[own]}
    assert not later, f"{path.relative_to(LIB_DIR)} ({own}) imports from later stages: {sorted(later)}"


@pytest.mark.parametrize("path", [*library_modules(), MODULE_DIR / "TTVPrognosis.py"],
                         ids=lambda path: str(path.relative_to(MODULE_DIR)))
def test_modules_stay_small(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines; split it by job"


@pytest.mark.parametrize("path", library_modules(), ids=lambda path: str(path.relative_to(LIB_DIR)))
def test_only_the_mrml_adapters_import_slicer_vtk_or_qt(path):
    if room_of(path) == "mrml":
        return
    found = imported_top_modules(path) & set(SLICER_MODULES)
    assert not found, f"{path.relative_to(LIB_DIR)} imports {sorted(found)}; only mrml/ and TTVPrognosis.py may"


def test_the_stage_check_sees_a_backward_import():
    """The checker itself: a measuring module importing the cohort runner is caught, its own room is not."""
    source = "from ..cohort.runner import run_cohort\nfrom .components import connected_components\n"
    rooms = rooms_imported_by(source, package_of(LIB_DIR / "measure" / "volumetry.py"))
    assert rooms == {"cohort", "measure"}
    assert {room for room in rooms if RANK[room] > RANK["measure"]} == {"cohort"}
