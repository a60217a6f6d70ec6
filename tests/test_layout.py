"""The package layout: one ``notebazaar`` namespace over the repository's top-level folders."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {name: f"notebazaar.{name}" for name in ("pipeline", "index", "bot", "web")}


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
