"""
The peer benchmarks' runner and tables (``benchmarks/peers``), without the peer venvs: the
command line answers, the round order rotates, and the tables render a fixed input with ratios
paired by round. The benchmarks themselves run with ``make bench-peers``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"peers_{name}", PEERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    sys.path.insert(0, str(PEERS))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(PEERS))
    return mod


def cell(config: str, label: str, measure: str, unit: str, rounds: list[float], **kw: Any) -> dict:
    better = "higher" if unit == "tokens/s" else "lower"
    group = (
        "telemetry"
        if config in ("ours-otel", "langgraph-sdk", "langgraph-openllmetry")
        else "plain"
    )
    return {
        "config": config,
        "label": label,
        "group": group,
        "measure": measure,
        "unit": unit,
        "better": better,
        "rounds": rounds,
        "samples": 5 * len(rounds),
        **kw,
    }


DOC = {
    "cells": [
        cell("ours", "ours", "stream", "tokens/s", [5e6, 4e6, 6e6]),
        cell("langgraph", "LangGraph (custom)", "stream", "tokens/s", [2e5, 2e5, 2e5]),
        cell("ours", "ours", "chain-10", "µs/node", [2.0, 2.0, 2.0]),
        cell("langgraph", "LangGraph", "chain-10", "µs/node", [150.0, 160.0, 140.0]),
        cell("ours", "ours", "chain-1000", "µs/node", [1.5, 1.5, 1.5]),
        cell(
            "langgraph",
            "LangGraph",
            "chain-1000",
            "µs/node",
            [210.0, 200.0, 230.0],
            notes=["no recursion_limit passed"],
        ),
        cell(
            "ours-otel",
            "ours + OTel",
            "chain-10",
            "µs/node",
            [60.0, 62.0, 58.0],
            rounds_run_only=[30.0, 31.0, 29.0],
            spans_per_run=11.0,
        ),
        cell(
            "langgraph-sdk",
            "LangGraph + SDK",
            "chain-10",
            "µs/node",
            [150.0, 150.0, 150.0],
            rounds_run_only=[150.0, 150.0, 150.0],
            spans_per_run=0.0,
        ),
        cell(
            "langgraph-openllmetry",
            "LangGraph + OpenLLMetry",
            "chain-10",
            "µs/node",
            [480.0, 500.0, 460.0],
            rounds_run_only=[380.0, 400.0, 360.0],
            spans_per_run=12.0,
            notes=["no recursion_limit passed"],
        ),
    ]
}


class TestCommandLine:
    """``run.py --help`` and ``--list`` answer without building any venv."""

    def test_help_and_list(self) -> None:
        for flag in ("--help", "--list"):
            r = subprocess.run(
                [sys.executable, str(PEERS / "run.py"), flag],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert r.returncode == 0, r.stderr
            assert "ours" in r.stdout


class TestRoundOrder:
    """Any two configurations swap order from one round to the next, and the starting point
    moves every two rounds."""

    def test_rotation(self) -> None:
        run = _load("run")
        items = ["a", "b", "c"]
        orders = [run.rotated(items, r) for r in range(6)]
        assert orders[:4] == [["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"], ["a", "c", "b"]]
        for even, odd in zip(orders[::2], orders[1::2], strict=True):
            assert odd == even[::-1]
        assert {o[0] for o in orders[::2]} == set(items)


class TestTables:
    """The tables of a fixed document: medians, ranges, ratios paired by round, the scaling
    ratio, the telemetry cost, and each note once with where it applies."""

    def test_render(self) -> None:
        report = _load("_report")
        text = report.render(DOC, markdown=True)
        lines = text.splitlines()

        def row(label: str, contains: str) -> str:
            return next(ln for ln in lines if f"| {label} |" in ln and contains in ln)

        # stream: paired by round 25x, 20x, 30x -> median 25x, range 20x-30x
        assert "| stream (tokens/s) | ours | 5.00 M | 4.00 M–6.00 M | 15 | (reference) |" in text
        assert "25.0× (20.0×–30.0×) better" in row("LangGraph (custom)", "")
        # chain-10 per round: 75x, 80x, 70x
        assert "75.0× (70.0×–80.0×) better" in row("LangGraph", "| 150 |")
        # scaling: chain-1000 / chain-10 per round
        assert "| ours | 2.00 | 1.50 | 0.75 (0.75–0.75) |" in text
        assert "| LangGraph | 150 | 210 | 1.40 (1.25–1.64) |" in text
        # telemetry: run-only column, spans per run, ratio against ours + OTel
        assert "| 8.00× (7.93×–8.06×) better |" in row("LangGraph + OpenLLMetry", "")
        assert "| 380 | 12 |" in row("LangGraph + OpenLLMetry", "")
        # cost: ours 58/60/56 -> 58; OpenLLMetry 330/350/310 -> 330
        assert "| chain-10 | µs/node | 58.0 (56.0–60.0) | 330 (310–350) |" in text
        assert text.count("no recursion_limit passed") == 1
        assert "LangGraph, LangGraph + OpenLLMetry [chain-1000, chain-10]" in text

    def test_formats(self) -> None:
        report = _load("_report")
        assert report.fmt(5_100_000, "tokens/s") == "5.10 M"
        assert report.fmt(28_400, "tokens/s") == "28 k"
        assert report.fmt(1.234, "µs/node") == "1.23"
        assert report.fmt(None, "µs/node") == "—"
        assert report.fmt_x(150.2) == "150×"
