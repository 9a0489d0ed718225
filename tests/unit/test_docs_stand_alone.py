"""The repository's documentation stands alone: every relative link in a tracked Markdown file points to
a file inside the repository, and no tracked file sends readers to a design brief that is not in it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z", *patterns], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / p for p in out.decode().split("\0") if p]


def test_relative_links_in_markdown_resolve_inside_the_repository():
    broken = []
    for doc in tracked("*.md"):
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):      # http:, https:, mailto: ...
                continue
            path = (doc.parent / target).resolve()
            if not path.is_relative_to(REPO) or not path.exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_no_file_points_to_a_design_brief_outside_the_repository():
    found = subprocess.run(["git", "grep", "-n", "DESIGN.md", "--", ".", ":!tests/unit/test_docs_stand_alone.py"],
                           cwd=REPO, capture_output=True, text=True)
    assert found.returncode == 1 and not found.stdout, found.stdout
