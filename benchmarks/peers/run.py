"""
Peer benchmarks: the same work in graphai (ours), upstream graphai-lib 0.0.12, LangGraph,
LlamaIndex Workflows and pydantic-graph, each in its own venv; prints the tables with the ratios
(ours against each peer) and writes ``benchmarks/peers/RESULTS.md`` and ``RESULTS.json``.

``make bench-peers`` runs ``.venv/bin/python benchmarks/peers/run.py``. The peer venvs are built
on first use from the pinned lock files in ``requirements/`` (``_venvs.py``: cached, rebuilt
when a lock file changes). Measures (``_timing.py``): ``stream`` (one node, ``--tokens`` tokens
to a concurrent consumer), ``chain-N`` (``--chains``), ``fanout`` (1 -> 20 -> join). Each cell
(engine configuration x measure) runs in a fresh process per round, isolated (``python -I``, a
temporary working directory, no OTEL_/GRAPHAI_/LANGCHAIN_/LANGGRAPH_/LANGSMITH_/TRACELOOP_
variables); each round runs every configuration of a measure back to back, in an order that
rotates every two rounds and runs reversed in odd rounds, so ratios are paired in time.
Telemetry rows send OTLP/gRPC to a local receiver (``_sink.py``) that ``run.py`` starts; after
each such process it counts the spans received and checks them (none when not instrumented;
ours: exactly one per node run plus one per run). Any failed check stops the run with the
problem and the command to reproduce it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _report  # noqa: E402
import _venvs  # noqa: E402
from _cells import Config, Measure, run_cell, sink  # noqa: E402


def _bench_run() -> Any:
    """``benchmarks/run.py`` (``make bench``), loaded by path: its ``machine()`` and ``_git()``."""
    spec = importlib.util.spec_from_file_location("bench_run", HERE.parent / "run.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CONFIGS = (
    Config("ours", "ours (graphai {v})", None, "peer_graphai.py", "graphai-otel"),
    Config("graphai-lib", "graphai-lib {v}", "graphai-lib", "peer_graphai.py", "graphai-lib"),
    Config("langgraph", "LangGraph {v}", "langgraph", "peer_langgraph.py", "langgraph", "custom"),
    Config(
        "langgraph-messages",
        "LangGraph {v}",
        "langgraph",
        "peer_langgraph.py",
        "langgraph",
        "messages",
        stream_only=True,
    ),
    Config(
        "llamaindex",
        "LlamaIndex Workflows {v}",
        "llama-index-workflows",
        "peer_llamaindex.py",
        "llama-index-workflows",
    ),
    Config(
        "pydantic-graph",
        "pydantic-graph {v}",
        "pydantic-graph",
        "peer_pydantic_graph.py",
        "pydantic-graph",
    ),
    Config("ours-otel", "ours + OTel", None, "peer_graphai.py", "graphai-otel", telemetry="on"),
    Config(
        "langgraph-sdk",
        "LangGraph + SDK, not instrumented",
        "langgraph",
        "peer_langgraph.py",
        "langgraph",
        "messages",
        telemetry="sdk",
    ),
    Config(
        "langgraph-openllmetry",
        "LangGraph + OpenLLMetry {v}",
        "langgraph",
        "peer_langgraph.py",
        "opentelemetry-instrumentation-langchain",
        "messages",
        telemetry="on",
    ),
)
BETTER = {"stream": "higher", "chain": "lower", "fanout": "lower"}


def measures(args: argparse.Namespace) -> list[Measure]:
    out = [Measure("stream", "stream", args.tokens)]
    out += [Measure(f"chain-{n}", "chain", n) for n in args.chains]
    out.append(Measure("fanout", "fanout", 20))
    if args.only:
        unknown = set(args.only) - {m.id for m in out}
        if unknown:
            raise SystemExit(f"unknown measure(s) {sorted(unknown)}; known: {[m.id for m in out]}")
        out = [m for m in out if m.id in args.only]
    return out


def selected_configs(args: argparse.Namespace) -> list[Config]:
    out = [c for c in CONFIGS if not (args.no_telemetry and c.telemetry != "off")]
    if args.engines:
        unknown = set(args.engines) - {c.key for c in CONFIGS}
        if unknown:
            raise SystemExit(
                f"unknown engine(s) {sorted(unknown)}; known: {[c.key for c in CONFIGS]}"
            )
        out = [c for c in out if c.key in args.engines]
    return out


def rotated(items: list[Any], rnd: int) -> list[Any]:
    """Round ``rnd``'s order: rounds ``2j`` and ``2j + 1`` rotate by ``j``, the odd one runs
    reversed, so any two configurations swap order from one round to the next."""
    k = (rnd // 2) % len(items) if items else 0
    out = items[k:] + items[:k]
    return out[::-1] if rnd % 2 else out


# -- combining -------------------------------------------------------------------------------
def combine(docs: dict[tuple[str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    cells = []
    by_key = {c.key: c for c in CONFIGS}
    for (key, mid), per_round in docs.items():
        c, first = by_key[key], per_round[0]
        notes: dict[str, None] = {}
        for d in per_round:
            f = d["facts"]
            for fact in ("compile", "recursion_limit"):
                if fact in f:
                    notes[f[fact]] = None
            if d["warmup_kept"]:
                notes["one run took longer than the budget: the warmup run was the sample"] = None
        alone = [d["facts"]["model_alone"] for d in per_round if "model_alone" in d["facts"]]
        if alone:
            rate = _report.fmt(statistics.median(alone), "tokens/s")
            notes[f"the chat model alone (model.astream, no graph): {rate} tokens/s"] = None
        spans = [d["sink"]["spans"] / d["executions"] for d in per_round if "sink" in d]
        cells.append(
            {
                "config": key,
                "label": c.label_for(mid, first["versions"]),
                "group": c.group,
                "measure": mid,
                "unit": first["unit"],
                "better": BETTER[first["measure"]],
                "rounds": [d["value"] for d in per_round],
                "rounds_run_only": [d["value_run_only"] for d in per_round]
                if c.telemetry != "off"
                else [],
                "samples": sum(len(d["samples"]) for d in per_round),
                "spans_per_run": statistics.median(spans) if spans else None,
                "notes": list(notes),
                "versions": first["versions"],
            }
        )
    return cells


# -- main ------------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="fresh-process rounds per cell (5)")
    p.add_argument("--tokens", type=int, default=100_000, help="stream: tokens per run (100000)")
    p.add_argument(
        "--chains",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 100, 1000],
        help="chain lengths, comma-separated (10,100,1000)",
    )
    p.add_argument("--repeats", type=int, default=5, help="samples per process at most (5)")
    p.add_argument(
        "--budget-s", type=float, default=3.0, help="stop sampling a process past this (3)"
    )
    p.add_argument(
        "--sample-s", type=float, default=0.2, help="chain/fanout: seconds per sample (0.2)"
    )
    p.add_argument(
        "--only", type=lambda s: s.split(","), default=[], help="measures, e.g. stream,chain-10"
    )
    p.add_argument(
        "--engines", type=lambda s: s.split(","), default=[], help="configuration keys (--list)"
    )
    p.add_argument("--no-telemetry", action="store_true", help="skip the telemetry rows")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 10k tokens, chains 10,100, 1 round"
    )
    p.add_argument("--timeout", type=float, default=600, help="seconds per process")
    p.add_argument("--setup-only", action="store_true", help="build the peer venvs and exit")
    p.add_argument("--list", action="store_true", help="list configurations and measures")
    p.add_argument("--write", action="store_true", help="write RESULTS even for partial runs")
    args = p.parse_args(argv)
    if args.quick:
        args.tokens, args.chains, args.rounds = 10_000, [10, 100], 1
        args.repeats, args.budget_s, args.sample_s = 2, 1.0, 0.05
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    configs, ms = selected_configs(args), measures(args)
    if args.list:
        for c in CONFIGS:
            print(f"{c.key:24} venv={c.venv or '(ours)':24} telemetry={c.telemetry:4} {c.script}")
        print("measures:", ", ".join(m.id for m in ms))
        return 0
    started = time.perf_counter()
    bench = _bench_run()
    git_start = git_state(bench)
    pythons: dict[str | None, Path] = {None: Path(sys.executable)}
    setup_s = {}
    for name in dict.fromkeys(c.venv for c in configs if c.venv):
        t0 = time.perf_counter()
        pythons[name] = _venvs.ensure(name)
        setup_s[name] = round(time.perf_counter() - t0, 1)
    if args.setup_only:
        return 0
    docs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    telemetry = any(c.telemetry != "off" for c in configs)
    with sink() if telemetry else _none() as otlp:
        for rnd in range(args.rounds):
            print(f"-- round {rnd + 1}/{args.rounds}", file=sys.stderr)
            for m in rotated(ms, rnd):
                cell_configs = [c for c in configs if m.kind == "stream" or not c.stream_only]
                for c in rotated(cell_configs, rnd):
                    t0 = time.perf_counter()
                    doc = run_cell(c, m, pythons, args, otlp)
                    docs.setdefault((c.key, m.id), []).append(doc)
                    print(
                        f"   {m.id:11} {c.key:22} {_report.fmt(doc['value'], doc['unit']):>9} "
                        f"{doc['unit']:9} {time.perf_counter() - t0:5.1f} s",
                        file=sys.stderr,
                    )
    order = {(c.key, m.id): (i, j) for j, c in enumerate(CONFIGS) for i, m in enumerate(ms)}
    cells = sorted(combine(docs), key=lambda cell: order[(cell["config"], cell["measure"])])
    total = time.perf_counter() - started
    git_end = git_state(bench)
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "total_s": round(total),
        "venv_setup_s": setup_s,
        "machine": bench.machine(),
        "python": sys.version.split()[0],
        "git": git_start
        if git_end == git_start
        else f"{git_start} at the start, {git_end} at the end (graphai changed during the run)",
        "argv": " ".join(
            ["benchmarks/peers/run.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "rounds": args.rounds,
        "tokens": args.tokens,
        "chains": args.chains,
        "versions": {c.venv or "ours": docs_versions(docs, c.key) for c in configs},
    }
    doc = {"meta": meta, "cells": cells}
    print()
    print(_report.render(doc, markdown=False))
    print(f"total {total:.0f} s (venv setup {sum(setup_s.values()):.0f} s)")
    partial = args.quick or bool(args.only) or bool(args.engines) or args.no_telemetry
    if args.write or not partial:
        write_results(doc, docs)
    else:
        print("(partial run: RESULTS not written; pass --write to force)")
    return 0


def git_state(bench: Any) -> str:
    """The commit, and whether ``graphai/`` had uncommitted changes (ours runs the work tree)."""
    rev = bench._git("rev-parse", "--short", "HEAD") or "?"
    dirty = bench._git("status", "--porcelain", "--", "graphai")
    return rev + (" (graphai/ had uncommitted changes)" if dirty else "")


@contextmanager
def _none() -> Iterator[None]:
    yield None


def docs_versions(docs: dict[tuple[str, str], list[dict[str, Any]]], key: str) -> dict[str, str]:
    for (k, _), per_round in docs.items():
        if k == key:
            return dict(per_round[0]["versions"])
    return {}


def write_results(doc: dict[str, Any], docs: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    m = doc["meta"]
    mc = m["machine"]
    lines = [
        "# Peer benchmark results",
        "",
        f"Generated by `make bench-peers` (`{m['argv']}`) on {m['date']}, "
        f"git {m['git']}, total {m['total_s']} s. Do not edit by hand; re-run to refresh.",
        "",
        f"- Machine: {mc['platform']}, {mc['cpu']}, {mc['cpus']} CPUs, {mc['memory']}; "
        f"CPython {m['python']} for every engine.",
        f"- {m['rounds']} rounds; stream {m['tokens']} tokens; chains {m['chains']}; fan-out 20.",
        "- Versions: "
        + "; ".join(
            f"{k}: " + ", ".join(f"{d} {v}" for d, v in vs.items())
            for k, vs in m["versions"].items()
        ),
        "",
        _report.render(doc, markdown=True),
        "Method: see `benchmarks/peers/README.md`.",
        "",
    ]
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    raw = {f"{k}/{mid}": v for (k, mid), v in docs.items()}
    (HERE / "RESULTS.json").write_text(json.dumps({**doc, "raw": raw}, indent=1) + "\n")
    print(f"wrote {HERE / 'RESULTS.md'} and RESULTS.json")


if __name__ == "__main__":
    raise SystemExit(main())
