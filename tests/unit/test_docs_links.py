"""The README's and docs' references hold: every run they name has its committed results file, and every relative
link and anchor they use leads somewhere (the rule "every figure in the README comes from a committed results
file or names the run it came from" is only as good as those names)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "deploy").rglob("*.md")])
# a results file's stem: the tool's name, then its UTC start time (bench-20261206T004918Z, soak-..., load-profile-...)
RUN_ID = re.compile(r"\b([a-z][a-z-]*-20\d{6}T\d{6}Z)\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _text(page: Path) -> str:
    """The page without its fenced code blocks (commands and code are not links)."""
    return FENCE.sub("", page.read_text())


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", _text(page), re.M)}


def test_slug_follows_github() -> None:
    assert slug("Scale-out, faults and capacity") == "scale-out-faults-and-capacity"
    assert slug("Capacity at parallelism 1, 2 and 4") == "capacity-at-parallelism-1-2-and-4"
    assert slug("The `avro-confluent` table (issue 14)") == "the-avro-confluent-table-issue-14"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_run_has_its_results_file(page: Path) -> None:
    named = set(RUN_ID.findall(page.read_text()))
    missing = sorted(run for run in named if not any(RESULTS.glob(f"{run}.*")))
    assert not missing, f"{page.relative_to(ROOT)} names runs with no file in benchmarks/results: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(_text(page)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to what does not exist: {broken}"
