"""What can be checked of the Slicer module without the Slicer application (Qt is not available here)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2]
MODULE_FILE = MODULE_DIR / "TTVPrognosis.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "TTVPrognosis.ui"
LIB_DIR = MODULE_DIR / "TTVPrognosisLib"
GUI_MODULES = {"qt", "ctk", "slicer.app", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper"}


def library_sources() -> list[Path]:
    return sorted(LIB_DIR.rglob("*.py"))


def python_sources() -> list[Path]:
    return [MODULE_FILE, *library_sources()]


def ui_widget_names() -> set[str]:
    root = ElementTree.parse(UI_FILE).getroot()
    return {element.get("name") for element in root.iter() if element.tag in ("widget", "action", "layout")}


def test_every_ui_attribute_used_exists_in_the_ui_file():
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    assert used, "the widget should use widgets from the .ui file"
    missing = used - ui_widget_names()
    assert not missing, f"self.ui names not in {UI_FILE.name}: {sorted(missing)}"


def test_parameter_names_in_the_ui_exist_in_the_parameter_node():
    root = ElementTree.parse(UI_FILE).getroot()
    bound = {prop.find("string").text for prop in root.iter("property") if prop.get("name") == "SlicerParameterName"}
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    wrapper = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name.endswith("ParameterNode"))
    fields = {node.target.id for node in wrapper.body if isinstance(node, ast.AnnAssign)}
    assert bound, "the .ui should bind widgets to the parameter node"
    assert bound <= fields, f"SlicerParameterName without a parameter: {sorted(bound - fields)}"


@pytest.mark.parametrize("path", python_sources(), ids=lambda path: str(path.relative_to(MODULE_DIR)))
def test_sources_parse_with_python_3_9_grammar(path):
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


def python_3_9() -> str | None:
    """A working Python 3.9 interpreter (pyenv installs or PATH), if this machine has one."""
    candidates = [str(path) for path in sorted((Path.home() / ".pyenv" / "versions").glob("3.9.*/bin/python"))]
    candidates.append(shutil.which("python3.9") or "")
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 9)"],
                               capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


def test_sources_compile_with_a_real_python_3_9():
    interpreter = python_3_9()
    if interpreter is None:
        pytest.skip("no Python 3.9 interpreter on this machine (Slicer 5.8 uses Python 3.9)")
    code = "import sys\nfor path in sys.argv[1:]:\n    compile(open(path).read(), path, 'exec')\n"
    completed = subprocess.run([interpreter, "-c", code, *map(str, python_sources())], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def cmake_list(name: str) -> list[str]:
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    block = re.search(rf"set\({name}\s+(.*?)\)", text, re.S)
    assert block, f"{name} not found in CMakeLists.txt"
    return [entry.replace("${MODULE_NAME}", "TTVPrognosis") for entry in block.group(1).split()]


def test_cmake_lists_every_script_and_resource():
    scripts = set(cmake_list("MODULE_PYTHON_SCRIPTS"))
    on_disk = {str(path.relative_to(MODULE_DIR)) for path in python_sources()}
    assert scripts == on_disk, f"unlisted: {sorted(on_disk - scripts)}; listed but missing: {sorted(scripts - on_disk)}"
    resources = set(cmake_list("MODULE_PYTHON_RESOURCES"))
    resource_files = {str(path.relative_to(MODULE_DIR)) for path in (MODULE_DIR / "Resources").rglob("*")
                      if path.is_file()} | {str(path.relative_to(MODULE_DIR)) for path in package_data_files()}
    assert resources == resource_files, (f"unlisted: {sorted(resource_files - resources)}; "
                                         f"listed but missing: {sorted(resources - resource_files)}")


def package_data_files() -> list[Path]:
    """Files inside the package that are not Python (the model and its card): Slicer copies them as resources,
    a wheel as package data."""
    return [path for path in LIB_DIR.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc")
            and "__pycache__" not in path.parts]


def test_pyproject_declares_every_package_data_file_and_every_subpackage():
    """What Slicer copies (CMakeLists.txt) a wheel must carry too, or a normal install lacks the model."""
    tomllib = pytest.importorskip("tomllib")
    import fnmatch

    settings = tomllib.loads((MODULE_DIR.parent / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    declared = settings["package-data"]
    data = package_data_files()
    assert data, "the model file is not inside the package"
    for path in data:
        package, relative = path.parent, None
        while package != LIB_DIR.parent:
            dotted = ".".join(package.relative_to(LIB_DIR.parent).parts)
            inside = str(path.relative_to(package))
            if any(fnmatch.fnmatch(inside, pattern) for pattern in declared.get(dotted, [])):
                relative = inside
                break
            package = package.parent
        assert relative is not None, f"{path.relative_to(MODULE_DIR)} is not declared as package data"
    assert settings["packages"]["find"]["include"] == ["TTVPrognosisLib*"]  # every subpackage, not only the top


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", library_sources(), ids=lambda path: str(path.relative_to(LIB_DIR)))
def test_library_has_no_gui_imports(path):
    """TTVPrognosisLib must import without the Slicer GUI; only the mrml/ adapters may use slicer (MRML)."""
    imported = imported_modules(path)
    assert not imported & GUI_MODULES, f"{path.name} imports GUI modules: {sorted(imported & GUI_MODULES)}"
    if path.relative_to(LIB_DIR).parts[0] != "mrml":
        assert not {name for name in imported if name == "slicer" or name.startswith("slicer.")}, \
            f"{path.name} imports slicer; only the mrml/ adapters may"


def test_library_imports_without_qt_or_slicer():
    code = ("import importlib, pkgutil, sys\nimport TTVPrognosisLib\n"
            "for module in pkgutil.walk_packages(TTVPrognosisLib.__path__, 'TTVPrognosisLib.'):\n"
            "    if not module.name.startswith('TTVPrognosisLib.mrml') and not module.name.endswith('__main__'):\n"
            "        importlib.import_module(module.name)\n"
            "assert 'qt' not in sys.modules and 'slicer' not in sys.modules, sorted(sys.modules)\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


def test_module_declares_a_self_test_and_logic():
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {"TTVPrognosis", "TTVPrognosisWidget", "TTVPrognosisLogic", "TTVPrognosisTest"} <= classes.keys()
    test_methods = [node.name for node in classes["TTVPrognosisTest"].body if isinstance(node, ast.FunctionDef)]
    assert "runTest" in test_methods and any(name.startswith("test_") for name in test_methods)


def test_every_parameter_binding_uses_the_call_that_returns_its_tag_on_slicer_5_8():
    """connectGui returns no tag before Slicer 5.10 (disconnectGui(None) then does nothing, and every enter()
    added connectors that reset the clinical choices); connectParametersToGui returns it on 5.8 too."""
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    names = [call.func.attr for call in calls]
    assert "connectGui" not in names, "connectGui returns no tag on Slicer 5.8"
    assert names.count("connectParametersToGui") >= 1
    tags = {target.attr for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "connectParametersToGui"
            for target in node.targets if isinstance(target, ast.Attribute)}
    assert tags, "the tag of connectParametersToGui must be kept to disconnect it"
    for call in calls:
        if call.func.attr == "disconnectGui":
            argument = call.args[0]
            assert isinstance(argument, ast.Attribute) and argument.attr in tags, \
                "disconnectGui must be given the tag connectParametersToGui returned"


def test_volume_selectors_hide_labelmaps():
    root = ElementTree.parse(UI_FILE).getroot()
    for widget in root.iter("widget"):
        types = [text.text for prop in widget.findall("property") if prop.get("name") == "nodeTypes"
                 for text in prop.iter("string")]
        if "vtkMRMLScalarVolumeNode" in types:
            hidden = [text.text for prop in widget.findall("property") if prop.get("name") == "hideChildNodeTypes"
                      for text in prop.iter("string")]
            assert "vtkMRMLLabelMapVolumeNode" in hidden, f"{widget.get('name')} offers labelmaps as a CT"


def test_module_file_stays_a_thin_panel():
    assert len(MODULE_FILE.read_text(encoding="utf-8").splitlines()) <= 500
