"""The package layout: one ``notebazaar`` namespace over the repository's top-level folders."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {name: f"notebazaar.{name}" for name in ("cli", "pipeline", "index", "bot", "web", "writer")}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


def _python_files() -> list[Path]:
    return [p for folder in (*FOLDERS, "tests") for p in (ROOT / folder).rglob("*.py")]


def test_every_package_folder_is_installed_under_the_namespace() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"] == {package: folder for folder, package in FOLDERS.items()}
    listed = set(setuptools["packages"])
    for folder, package in FOLDERS.items():
        for path in [ROOT / folder, *(p for p in (ROOT / folder).rglob("*") if p.is_dir())]:
            if path.name == "__pycache__" or not any(path.iterdir()):
                continue
            dotted = ".".join([package, *path.relative_to(ROOT / folder).parts])
            assert dotted in listed, f"{path.relative_to(ROOT)} is not installed: add {dotted} to pyproject"


def test_nothing_imports_the_folders_as_top_level_modules() -> None:
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FOLDERS]
    assert offenders == []


# What each layer may not import: nothing imports a layer above it, and the CLI sits on top of all.
# Retrieval (index) stands on the market's foundation only (settings, database, errors).
FORBIDDEN = {
    "notebazaar.pipeline": ("notebazaar.cli", "notebazaar.web", "notebazaar.bot", "notebazaar.writer"),
    "notebazaar.index": ("notebazaar.cli", "notebazaar.web", "notebazaar.bot", "notebazaar.writer"),
    "notebazaar.web": ("notebazaar.cli", "notebazaar.bot", "notebazaar.writer"),
    # The note writer is a client of the market: it may use the market's foundation, never a surface.
    "notebazaar.writer": ("notebazaar.cli", "notebazaar.web", "notebazaar.bot"),
    "notebazaar.bot.discord": (
        "notebazaar.cli",
        "notebazaar.web",
        "notebazaar.bot.reddit",
        "notebazaar.writer",
    ),
    "notebazaar.bot.reddit": (
        "notebazaar.cli",
        "notebazaar.web",
        "notebazaar.bot.discord",
        "notebazaar.writer",
    ),
}
INDEX_MAY_USE = {"notebazaar.pipeline.config", "notebazaar.pipeline.db", "notebazaar.pipeline.errors"}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [n for n in names if n.startswith("notebazaar.")]


def test_no_module_imports_a_layer_above_it() -> None:
    offenders = []
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            dotted = ".".join([package, *path.relative_to(ROOT / folder).with_suffix("").parts])
            rules = [bad for layer, bad in FORBIDDEN.items() if dotted.startswith(layer + ".")]
            for name in _imports(path):
                if any(name == b or name.startswith(b + ".") for bad in rules for b in bad):
                    offenders.append(f"{dotted} imports {name}")
                outside_foundation = name.startswith("notebazaar.pipeline") and name not in INDEX_MAY_USE
                if package == "notebazaar.index" and outside_foundation:
                    offenders.append(f"{dotted} imports {name}")
    assert offenders == []
