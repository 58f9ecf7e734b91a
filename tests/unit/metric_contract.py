"""The metric-name contract for tests: names documented in docs/metrics.md, names the rules record,
and the metric names a PromQL expression reads. A rename on either side breaks the tests using it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"

_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan", "atan2",
}
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")


def documented_metrics(doc: Path = METRICS_DOC) -> set[str]:
    """Every full metric name of docs/metrics.md: each table's first column, after its section's prefix."""
    names: set[str] = set()
    prefix = ""
    for line in doc.read_text().splitlines():
        if line.startswith("#"):  # a section of any level starts without a prefix
            prefix = ""
        found = re.match(r"Prefix `([a-z_]+)`", line)
        if found:
            prefix = found.group(1)
            continue
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for name in re.findall(r"`([a-z_]+)(?:\{[^}]*\})?`", first_cell):
            names.add(prefix + name)
    return names


def rule_groups(rules_dir: Path = RULES_DIR) -> list[dict]:
    groups = []
    for path in sorted(rules_dir.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def recorded_names(rules_dir: Path = RULES_DIR) -> set[str]:
    return {rule["record"] for group in rule_groups(rules_dir) for rule in group["rules"] if "record" in rule}


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and strings left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, regexes)
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # range selectors and subqueries
    text = _LABEL_LIST.sub(" ", text)  # by (...), on (...), ...
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names
