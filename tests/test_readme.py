"""The README stands alone: everything it points a reader to is in the repository (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_PATH = re.compile(r"`((?:\.\./|[\w.-]+/)[\w./-]*\.\w+)`")
# The one file outside the repository the README names: explained there (what it holds, its format).
EXPLAINED = {"../shared/data/claims/climate-fever.jsonl"}


def _local(target: str, doc: Path) -> Path | None:
    if re.match(r"^[a-z]+:", target) or target.startswith("#"):
        return None  # a URL, or an anchor in the same page
    return (doc.parent / target.split("#")[0]).resolve()


def test_every_link_in_the_docs_leads_to_a_file_in_the_repository() -> None:
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text("utf-8")):
            path = _local(target, doc)
            if path is not None and (ROOT not in path.parents or not path.exists()):
                broken.append(f"{doc.name}: {target}")
    assert broken == []


def test_every_file_the_readme_names_is_in_the_repository_or_explained() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    missing = [
        path
        for path in set(CODE_PATH.findall(text))
        if not path.startswith(("var/", "/")) and path not in EXPLAINED and not (ROOT / path).exists()
    ]
    assert sorted(missing) == []
    assert "DESIGN.md" not in text  # the design brief is not in the repository: the README explains the idea
    for path in EXPLAINED:
        assert path in text and "not part of the repository" in text


def test_the_readme_says_how_torch_and_chromium_are_installed() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    assert "https://download.pytorch.org/whl/cpu" in text and "from the default index" in text
    assert "needs root" in text and "skipped" in text
    makefile = (ROOT / "Makefile").read_text("utf-8")
    assert "TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu" in makefile
