"""Helpers of the observability tests: the chart's files, promtool, and which metrics and labels a PromQL
expression refers to (checked against what operator/adapterops/metrics.py exports)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from adapterops.runtime import metrics
from testworld.cluster import CHART

HERE = Path(__file__).resolve().parent
RULES_FILE = CHART / "files" / "prometheus" / "alerts.yaml"
DASHBOARD_FILE = CHART / "files" / "dashboards" / "adapterops.json"
# Labels every scraped series has besides its own (kubernetes service discovery adds more, but the rules
# and the dashboard must not rely on those).
SCRAPE_LABELS = {"job", "instance"}


class HelmError(Exception):
    pass


def run_promtool(promtool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@dataclass(frozen=True)
class Exported:
    name: str  # as scraped, e.g. adapterops_rollbacks_total
    labels: frozenset[str]


def exported_metrics() -> dict[str, Exported]:
    """Every series name operator/adapterops/metrics.py exports, with the labels it carries."""
    out: dict[str, Exported] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        base, kind = value._name, value._type
        labels = frozenset(value._labelnames) | SCRAPE_LABELS
        suffixes = {
            "counter": ["_total", "_created"],
            "gauge": [""],
            "histogram": ["_bucket", "_sum", "_count", "_created"],
            "summary": ["", "_sum", "_count", "_created"],
        }[kind]
        for suffix in suffixes:
            out[base + suffix] = Exported(base + suffix, labels | ({"le"} if suffix == "_bucket" else set()))
    out["up"] = Exported("up", frozenset(SCRAPE_LABELS))  # Prometheus' own, per scrape target
    return out


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
}  # fmt: skip


def references(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) a PromQL expression refers to: selectors' names (also through
    `{__name__=~"a|b"}`), label matchers and grouping labels."""
    names: set[str] = set()
    labels: set[str] = set()
    for m in _SELECTOR.finditer(expr):
        if m.group(1) and m.group(1) not in _KEYWORDS:
            names.add(m.group(1))
        for label, _op, value in _MATCHER.findall(m.group(2)):
            if label == "__name__":
                names.update(v for v in value.strip('"').split("|") if v)
            else:
                labels.add(label)
    bare = _STRING.sub('""', expr)
    names.update(re.findall(r"\badapterops_[a-zA-Z0-9_]+\b", bare))
    for group in _GROUPING.findall(bare):
        labels.update(x.strip() for x in group.split(",") if x.strip())
    return names, labels


def check_references(expr: str, where: str) -> list[str]:
    """Problems with the metrics and labels `expr` uses, as messages naming `where`."""
    catalog = exported_metrics()
    names, labels = references(expr)
    problems = [
        f"{where}: metric {n!r} is not exported by operator/adapterops/metrics.py" for n in names - set(catalog)
    ]
    known = set().union(*(catalog[n].labels for n in names if n in catalog)) if names else set()
    problems += [f"{where}: label {label!r} is on none of {sorted(names)}" for label in labels - known]
    return problems


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
