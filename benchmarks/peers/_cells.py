"""
One cell of the peer benchmarks (an engine configuration x a measure), run in a process of its
own: the configuration and measure types, the isolated child environment, the local OTLP
receiver, and the checks on what a process reports (its correctness check, where it imported
its engine from, the spans the receiver got).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _venvs

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    venv: str | None  # a peer venv's name; None: ours (this interpreter)
    script: str
    dist: str  # whose version the label shows
    variant: str | None = None  # stream variant
    telemetry: str = "off"
    stream_only: bool = False

    @property
    def group(self) -> str:
        return "plain" if self.telemetry == "off" else "telemetry"

    def label_for(self, measure: str, versions: dict[str, str]) -> str:
        v = versions.get(self.dist, "")
        base = self.label.replace("{v}", v)
        if measure == "stream" and self.variant in ("custom", "messages"):
            base += f" ({self.variant})"
        return base


@dataclass(frozen=True)
class Measure:
    id: str
    kind: str
    size: int


# -- processes -------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("OTEL_", "GRAPHAI_", "LANGCHAIN_", "LANGGRAPH_", "LANGSMITH_", "TRACELOOP_")
        )
    }
    env.pop("PYTHONPATH", None)
    env.update(GRAPHAI_LOG_LEVEL="ERROR", PYTHONHASHSEED="0")
    return env


@contextmanager
def sink() -> Iterator[tuple[str, str]]:
    """Run ``_sink.py``; yields (OTLP/gRPC endpoint, HTTP base URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-I", str(HERE / "_sink.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"grpc (127\.0\.0\.1:\d+) http (127\.0\.0\.1:\d+)", line)
        if not m:
            raise SystemExit(f"_sink.py did not start (first line {line!r})")
        yield f"http://{m.group(1)}", f"http://{m.group(2)}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _http(url: str, post: bool = False) -> Any:
    req = urllib.request.Request(url, method="POST" if post else "GET")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def fail(what: str, cmd: list[str], detail: str) -> SystemExit:
    return SystemExit(f"\nFAILED: {what}\n  {detail}\n  reproduce: {' '.join(cmd)}")


def run_cell(
    c: Config,
    m: Measure,
    pythons: dict[str | None, Path],
    args: argparse.Namespace,
    otlp: tuple[str, str] | None,
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    cmd = [str(pythons[c.venv]), "-I", str(HERE / c.script), "--measure", m.kind]
    cmd += ["--size", str(m.size), "--telemetry", c.telemetry, "--repeats", str(args.repeats)]
    cmd += ["--budget-s", str(args.budget_s), "--sample-s", str(args.sample_s)]
    if m.kind == "stream" and c.variant:
        cmd += ["--variant", c.variant]
    if c.telemetry != "off":
        assert otlp is not None
        cmd += ["--otlp-endpoint", otlp[0]]
        _http(f"{otlp[1]}/reset", post=True)
    what = f"{c.key} / {m.id}"
    try:
        r = subprocess.run(
            [*cmd, "--out", str(out)],
            cwd=tempfile.gettempdir(),
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=args.timeout,
        )
        doc = json.loads(out.read_text()) if out.exists() and out.stat().st_size else None
    except subprocess.TimeoutExpired as exc:
        raise fail(what, cmd, f"no result within {args.timeout} s") from exc
    finally:
        out.unlink(missing_ok=True)
    if doc is None:
        raise fail(what, cmd, f"exit {r.returncode}, no JSON; stderr: {r.stderr.strip()[-1500:]}")
    if not isinstance(doc, dict) or not doc.get("ok"):
        problems = doc.get("problems", []) if isinstance(doc, dict) else [repr(doc)]
        raise fail(what, cmd, "check failed: " + "; ".join(problems))
    check_origin(c, doc, pythons, what, cmd)
    if otlp is not None and c.telemetry != "off":
        got = _http(f"{otlp[1]}/spans")
        doc["sink"] = {**got, "by_name": dict(list(got["by_name"].items())[:6])}
        want = doc.get("expected_spans")
        if c.telemetry == "sdk" and got["spans"]:
            raise fail(what, cmd, f"{got['spans']} spans exported without instrumentation")
        if c.telemetry == "on" and not got["spans"]:
            raise fail(what, cmd, "the instrumentation exported no span")
        if want is not None and got["spans"] != want:
            raise fail(what, cmd, f"{got['spans']} spans received, expected {want}")
    return doc


def check_origin(
    c: Config, doc: dict[str, Any], pythons: dict[str | None, Path], what: str, cmd: list[str]
) -> None:
    """Ours must import this repository's graphai; a peer, its package from its own venv."""
    f = Path(doc["module_file"]).resolve()
    ours = (REPO / "graphai").resolve()
    if c.venv is None:
        ok = f.is_relative_to(ours)
    else:
        ok = f.is_relative_to((_venvs.VENVS / c.venv).resolve()) and not f.is_relative_to(ours)
    if not ok:
        raise fail(what, cmd, f"imported {f}, from the wrong place")
