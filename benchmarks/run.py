"""
Run every ``benchmarks/bench_*.py`` under our graphai and under upstream graphai-lib 0.0.12,
print a comparison table and write ``benchmarks/RESULTS.md`` (+ ``RESULTS.json``).

``make bench`` runs ``.venv/bin/python benchmarks/run.py``. Upstream lives in its own venv,
``benchmarks/.upstream-venv`` (created on first use). Its interpreter runs in isolated mode
(``-I``: no PYTHONPATH, no user site, no script directory on sys.path) from a temporary
working directory, so ``import graphai`` cannot resolve to this repository; each script reports
``graphai.__file__`` and this runner checks it.

Options: ``--only NAME[,NAME]`` (repeatable), ``--quick`` (smoke sizes; writes no RESULTS
unless ``--write``), ``--ours-only``, ``--upstream-venv DIR`` (reuse an existing venv),
``--list``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
UPSTREAM_VENV = HERE / ".upstream-venv"
UPSTREAM_REQ = "graphai-lib==0.0.12"
SCRIPT_TIMEOUT_S = 900


# -- interpreters ----------------------------------------------------------------------------
def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _upstream_version(py: Path) -> str | None:
    code = "import importlib.metadata as m; print(m.version('graphai-lib'))"
    try:
        r = subprocess.run(
            [str(py), "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tempfile.gettempdir(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_upstream_venv(venv: Path) -> Path:
    """Create ``venv`` with graphai-lib 0.0.12 if it is missing or holds something else.
    Same base interpreter as ours, so both sides run the same CPython build."""
    py = _venv_python(venv)
    want = UPSTREAM_REQ.split("==")[1]
    if py.exists() and _upstream_version(py) == want:
        return py
    base = getattr(sys, "_base_executable", None) or sys.executable
    print(f"creating {venv} with {UPSTREAM_REQ} (base interpreter {base})", file=sys.stderr)
    if not py.exists():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", UPSTREAM_REQ],
        check=True,
        cwd=tempfile.gettempdir(),
    )
    got = _upstream_version(py)
    if got != want:
        raise SystemExit(f"{venv}: graphai-lib {got!r} installed, expected {want}")
    return py


def _env(impl: str) -> dict[str, str]:
    env = dict(os.environ)
    env["GRAPHAI_LOG_LEVEL"] = "ERROR"
    env["PYTHONHASHSEED"] = "0"
    for k in list(env):
        # no telemetry configured from the caller's shell leaks into a bare benchmark
        if k.startswith(("OTEL_", "GRAPHAI_")) and k != "GRAPHAI_LOG_LEVEL":
            del env[k]
    env.pop("PYTHONPATH", None)
    if impl == "ours":
        env["PYTHONPATH"] = str(REPO)
    return env


def _cmd(impl: str, upstream_py: Path | None, script: Path) -> tuple[list[str], str]:
    """Command line and working directory for running ``script`` under ``impl``."""
    if impl == "ours":
        return [sys.executable, str(script), "--impl", "ours"], str(REPO)
    assert upstream_py is not None
    return [str(upstream_py), "-I", str(script), "--impl", "upstream"], tempfile.gettempdir()


def _check_origin(impl: str, doc: dict[str, Any], upstream_venv: Path) -> None:
    """Fail loudly if a run imported the wrong graphai."""
    f = Path(doc["graphai_file"]).resolve()
    ours_pkg = (REPO / "graphai").resolve()
    if impl == "ours" and not f.is_relative_to(ours_pkg):
        raise SystemExit(f"'ours' run imported graphai from {f}, expected {ours_pkg}")
    if impl == "upstream" and (
        f.is_relative_to(ours_pkg) or not f.is_relative_to(upstream_venv.resolve())
    ):
        raise SystemExit(f"'upstream' run imported graphai from {f}, not from {upstream_venv}")


# -- running ---------------------------------------------------------------------------------
def list_benchmarks(script: Path) -> list[dict[str, Any]]:
    cmd, cwd = _cmd("ours", None, script)
    r = subprocess.run(
        [*cmd, "--list"], capture_output=True, text=True, cwd=cwd, env=_env("ours"), timeout=120
    )
    if r.returncode != 0:
        raise SystemExit(f"{script.name} --list failed:\n{r.stderr}")
    return json.loads(r.stdout)


def run_script(
    impl: str, upstream_py: Path | None, script: Path, names: list[str], quick: bool
) -> dict[str, Any]:
    cmd, cwd = _cmd(impl, upstream_py, script)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    try:
        cmd += ["--only", ",".join(names), "--out", str(out)]
        if quick:
            cmd.append("--quick")
        r = subprocess.run(
            cmd,
            cwd=cwd,
            env=_env(impl),
            timeout=SCRIPT_TIMEOUT_S,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
        )
        if not out.exists() or out.stat().st_size == 0:
            raise SystemExit(f"{script.name} [{impl}] produced no JSON (exit {r.returncode})")
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def _merge(into: dict[str, Any], doc: dict[str, Any]) -> None:
    for key in ("impl", "python", "executable", "graphai_file", "graphai_version", "repeats"):
        into.setdefault(key, doc[key])
    into.setdefault("results", {}).update(doc["results"])
    into.setdefault("errors", {}).update(doc["errors"])


def combine_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One document from several rounds: each metric's value is the median of its per-round
    values (each itself a median of repeats); the per-round values and samples are kept."""
    if not rounds:
        return {}
    out = {k: v for k, v in rounds[0].items() if k not in ("results", "errors")}
    out["rounds"] = len(rounds)
    out["errors"] = {k: v for r in rounds for k, v in r.get("errors", {}).items()}
    results: dict[str, Any] = {}
    names = dict.fromkeys(n for r in rounds for n in r.get("results", {}))
    for name in names:
        per = [r["results"][name] for r in rounds if name in r.get("results", {})]
        metrics = {}
        for mname, m in per[0]["metrics"].items():
            vals = [p["metrics"][mname]["value"] for p in per if mname in p["metrics"]]
            merged = {k: v for k, v in m.items() if k != "samples"}
            merged["value"] = statistics.median(vals)
            merged["round_values"] = vals
            if "samples" in m:
                merged["samples"] = [p["metrics"][mname].get("samples") for p in per]
            metrics[mname] = merged
        results[name] = {
            "description": per[0]["description"],
            "metrics": metrics,
            "info": [p["info"] for p in per],
            "notes": sorted({n for p in per for n in p.get("notes", [])}),
            "wall_s": sum(p["wall_s"] for p in per),
        }
    out["results"] = results
    return out


# -- reporting -------------------------------------------------------------------------------
_TARGET = re.compile(r"^(ours|ratio)\s*(<=|>=)\s*([0-9.]+)$")


def check_target(target: str, ours: float | None, ratio: float | None) -> str:
    m = _TARGET.match(target.replace(" ", ""))
    if not m:
        return "?"
    what, op, bound = m.group(1), m.group(2), float(m.group(3))
    v = ours if what == "ours" else ratio
    if v is None:
        return "n/a"
    ok = v <= bound if op == "<=" else v >= bound
    return "PASS" if ok else "MISS"


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "tokens/s":
        return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.0f} k"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}"


def build_rows(
    ours: dict[str, Any],
    up: dict[str, Any],
    order: list[str],
    baselines: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per metric. ``baselines`` maps an ours-only benchmark to the benchmark whose
    upstream result it is compared with (its ``upstream_baseline``)."""
    baselines = baselines or {}
    rows = []
    for name in order:
        o = ours.get("results", {}).get(name)
        u = up.get("results", {}).get(name)
        baseline = None
        if u is None and name in baselines:
            u = up.get("results", {}).get(baselines[name])
            baseline = baselines[name]
        if o is None and u is None:
            continue
        if o is None and baseline is not None:
            continue  # ours failed: the baseline alone says nothing about this benchmark
        metrics = (o or u)["metrics"]
        for mname, m in metrics.items():
            ov = o["metrics"][mname]["value"] if o else None
            uv = u["metrics"][mname]["value"] if u and mname in u["metrics"] else None
            ratio = ov / uv if ov is not None and uv else None
            speedup = None
            if ratio:
                speedup = ratio if m["better"] == "higher" else 1 / ratio
            target = m.get("target")
            rows.append(
                {
                    "benchmark": name,
                    "metric": mname,
                    "unit": m["unit"],
                    "ours": ov,
                    "upstream": uv,
                    "ratio": ratio,
                    "speedup": speedup,
                    "target": target,
                    "status": check_target(target, ov, ratio) if target else "",
                    "baseline": baseline if uv is not None else None,
                }
            )
    return rows


def table(rows: list[dict[str, Any]], markdown: bool) -> str:
    head = [
        "benchmark",
        "metric",
        "unit",
        "ours",
        "upstream",
        "ours/upstream",
        "speedup",
        "target",
        "status",
    ]
    body = [
        [
            r["benchmark"],
            r["metric"],
            r["unit"],
            fmt(r["ours"], r["unit"]),
            fmt(r["upstream"], r["unit"]) + (f" ({r['baseline']})" if r.get("baseline") else ""),
            "—" if r["ratio"] is None else f"{r['ratio']:.2f}",
            "—" if r["speedup"] is None else f"{r['speedup']:.2f}×",
            r["target"] or "",
            r["status"],
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += [
            "| "
            + " | ".join(c if i != 8 or not c else f"**{c}**" for i, c in enumerate(row))
            + " |"
            for row in body
        ]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(out)


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpus": str(os.cpu_count()), "memory": mem}


def _git(*args: str) -> str:
    try:
        r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        return r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _pkg_versions(py: Path | None) -> str:
    if py is None:
        return ""
    code = (
        "import importlib.metadata as m\n"
        "print(', '.join(f'{d} {m.version(d)}' for d in ('graphai-lib', 'pydantic')))"
    )
    r = subprocess.run(
        [str(py), "-I", "-c", code],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=60,
    )
    return r.stdout.strip()


def write_results(
    path: Path,
    rows: list[dict[str, Any]],
    ours: dict[str, Any],
    up: dict[str, Any],
    meta: dict[str, Any],
    descriptions: dict[str, str],
) -> None:
    m = meta["machine"]
    lines = [
        "# Benchmark results: graphai vs graphai-lib 0.0.12",
        "",
        f"Generated by `make bench` (`benchmarks/run.py{meta['argv']}`) on {meta['date']}, "
        f"total {meta['total_s']:.0f} s. Do not edit by hand; re-run to refresh.",
        "",
        "## Environment",
        "",
        f"- Machine: {m['platform']}, {m['cpu']}, {m['cpus']} CPUs, {m['memory']}",
        f"- Ours: graphai {ours.get('graphai_version', '?')} from `{ours.get('graphai_file', '?')}`"
        f", git {meta['git']}, Python {ours.get('python', '?')} (`{ours.get('executable', '?')}`)",
        f"- Upstream: {meta['upstream_pkgs'] or 'not run'} from "
        f"`{up.get('graphai_file', '?')}`, Python {up.get('python', '?')} "
        f"(`{up.get('executable', '?')}`, run with `-I` from a temp dir)",
        f"- Repeats: {ours.get('rounds', '?')} rounds (fresh processes, ours and upstream "
        "alternating); in each, the median of "
        f"{ours.get('repeats', '?')} timed runs after 1 warmup; reported: median over rounds; "
        "`GRAPHAI_LOG_LEVEL=ERROR`, warnings ignored, no OTEL_*/GRAPHAI_* env passed through.",
        "",
        "## Results",
        "",
        table(rows, markdown=True),
        "",
        "`ours/upstream` is the raw ratio of the values; `speedup` is how many times better ours "
        "is (ratio for higher-is-better metrics, its inverse for lower-is-better). Targets: "
        "`ours<=X` applies to our value, `ratio>=X` to ours/upstream. An upstream value with a "
        "benchmark name in parentheses is upstream's result for *that* benchmark in the same run "
        "(ours-only benchmarks compared with an upstream baseline, e.g. `stream_telemetry` "
        "against upstream's `stream_plain`); `—` means upstream has nothing comparable "
        "(it has no telemetry).",
        "",
    ]
    lines += [
        "### Per-round values",
        "",
        "| benchmark.metric | ours, per round | upstream, per round |",
        "|---|---|---|",
    ]
    for r in rows:

        def rv(doc: dict[str, Any], r: dict[str, Any] = r, bench: str | None = None) -> str:
            res = doc.get("results", {}).get(bench or r["benchmark"])
            vals = res["metrics"].get(r["metric"], {}).get("round_values") if res else None
            return " / ".join(fmt(v, r["unit"]) for v in vals) if vals else "—"

        up_cell = rv(up, r, r.get("baseline"))
        if r.get("baseline") and up_cell != "—":
            up_cell += f" ({r['baseline']})"
        lines.append(f"| {r['benchmark']}.{r['metric']} | {rv(ours, r)} | {up_cell} |")
    lines.append("")
    errors = {
        **{f"ours/{k}": v for k, v in ours.get("errors", {}).items()},
        **{f"upstream/{k}": v for k, v in up.get("errors", {}).items()},
    }
    if errors:
        lines += ["## Errors", ""] + [f"- `{k}`: {v}" for k, v in errors.items()] + [""]
    lines += ["## Benchmarks", ""]
    lines += [f"- `{k}`: {v}" for k, v in descriptions.items()]
    lines += [
        "",
        "## Method",
        "",
        "- The same script (`benchmarks/bench_*.py`) runs under both interpreters in one "
        "`run.py` invocation, each in a fresh process; each script "
        "prints JSON keyed by benchmark name, including `graphai.__file__`, which `run.py` "
        "checks (ours from this repo, upstream from `benchmarks/.upstream-venv`).",
        "- Timing with `time.perf_counter`; one untimed warmup, then the timed repeats, "
        "`gc.collect()` before each; the median per round, then the median over rounds, is "
        "reported. Rounds alternate which side runs first. Samples are in `RESULTS.json`.",
        "- Streaming: a fresh `Callback()` per run passed to `execute(input, callback=cb)`; the "
        "consumer task draining `cb.aiter()` is created before `execute`; time from `execute` "
        "start until the consumer's `async for` ended (it saw END). The script checks that "
        "the consumer received every item (tokens + 3 node markers + END) on both sides.",
        "- `interleaved_floor` is the stream_interleaved shape without graphai and with the "
        "cheapest consumer that still sees each token (drain a list, `sleep(0)`): the cost of "
        "two task steps per loop iteration. A library whose consumer sees tokens as they come "
        "(rather than in batches) cannot beat it on this event loop.",
        "- Per-node overhead: (median time of the executions − median time of directly "
        "awaiting the same functions in a loop) / node calls. `execute` is called without a "
        "callback, so the per-execution cost (callback creation, run setup) is included, "
        "amortised over the chain length (so short chains show more per node when the "
        "per-node cost itself is small).",
        "- Scaling: the same measurement for 10-, 100- and 1000-node chains, 10,000 node calls "
        "per repeat each (1000, 100 and 10 executions).",
        "- `queue_baseline` does no graphai work; its ratio near 1.0 shows the two interpreters "
        "are equally fast, so the other ratios measure the libraries.",
        "- Noise: a shared 2-vCPU VM; run-to-run variation of a few percent is normal, more on "
        "the sub-100-ms measurements.",
        "",
        "### Telemetry benchmarks (`bench_telemetry.py`, ours only)",
        "",
        "Upstream has no telemetry, so these run only under ours, each in a process of its own "
        "(they install global telemetry state). Where two configurations are compared they run "
        "in the same process, interleaved (on, off, off, on, ...), and each side's median is "
        "taken; telemetry is switched off with `graphai.telemetry.uninstrument()` and on again "
        "by re-installing the same instrumentation object (no instrument is created twice).",
        "",
        "- Full telemetry (`stream_telemetry`, `token_cost`) is what an application gets from "
        "`graphai.telemetry.configure(otlp_endpoint=..., otlp_protocol='grpc', "
        "prometheus_addr='127.0.0.1:0', set_global=False, metric_export_interval_ms=1000)`: "
        "SDK `TracerProvider` + `BatchSpanProcessor(OTLPSpanExporter)` (gRPC), `MeterProvider` "
        "with `PeriodicExportingMetricReader(OTLPMetricExporter)` every 1 s and a "
        "`PrometheusMetricReader` served on `/metrics`; default token events (`capped`, 100 per "
        "node run), default delivery-delay sampling. The OTLP receiver is a real one, "
        "`tests/integration/otlp_sink.py`, started by the benchmark as a subprocess on free "
        "ports (it competes for the same 2 vCPUs, as a local collector would). structlog is not "
        "configured (graphai logs per node run, never per token). After the runs the benchmark "
        "checks that the sink received every `chat bench` span, with token events, plus the "
        "metrics, and that `/metrics` serves `graphai_node_output_tokens_total`.",
        "- `stream_telemetry`: the `stream_plain` shape with a `kind='llm', model='bench'` "
        "stream node and full telemetry; its `ours/upstream` is the cross-ratio against "
        "upstream's `stream_plain` (no telemetry) from the same run, per the target.",
        "- `token_cost`: (median time per token with full telemetry − median time per token "
        "after `uninstrument()`), same process and graph, 100k tokens, 11 runs each.",
        "- `node_cost`: 100-node chain, 50 executions per run, SDK `TracerProvider` + "
        "`BatchSpanProcessor` (queue 65536, so no span is dropped; the script checks that every "
        "span reached the exporter) to a no-op exporter, `MeterProvider` + "
        "`InMemoryMetricReader`. `telemetry_us` = (on − off) per node; `bare_sdk_us` = the same "
        "SDK calls graphai makes, written out by hand and timed alone on the same providers: per "
        "node `start_span(name, context=run ctx, kind=INTERNAL, 5 attributes)`, "
        "`context.attach(set_span_in_context(span))` + `detach`, `set_attributes({outcome})`, "
        "`end()`, one `node.duration` histogram record (4 attributes); per execution (amortised "
        "over 100 nodes, as in graphai's number) the run span and one `graph.duration` record. "
        "`ratio` = telemetry_us / bare_sdk_us.",
        "- `api_only`: 100-node chain with `graphai.telemetry.instrument()` on the global "
        "providers, which are the API's proxies in a fresh process (checked), minus "
        "`uninstrument()`, per node; 11 runs each.",
        "- `rss_1m`: `benchmarks/bench_rss.py`, used as written: one stream node emits 1M "
        "tokens (yielding to the loop every 256) with SDK providers passed to "
        "`instrument()` (BatchSpanProcessor to a discarding exporter, InMemoryMetricReader), "
        "a consumer drains the stream; a thread samples RSS every 2 ms; growth = peak − RSS "
        "before the run (after a 20k-token warm-up). Three fresh processes per round, median.",
        "",
    ]
    path.write_text("\n".join(lines))


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", action="append", default=[], metavar="NAME[,NAME]")
    p.add_argument("--quick", action="store_true", help="smoke sizes and 3 repeats")
    p.add_argument("--ours-only", action="store_true", help="do not run upstream")
    p.add_argument(
        "--upstream-venv",
        type=Path,
        default=UPSTREAM_VENV,
        help=f"venv holding {UPSTREAM_REQ} (created if missing)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating ours/upstream rounds; metric = median over rounds (quick: 1)",
    )
    p.add_argument("--list", action="store_true", help="list benchmarks and exit")
    p.add_argument(
        "--write",
        action="store_true",
        help="write RESULTS.md/.json even for --quick/--only/--ours-only runs",
    )
    args = p.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        # progress goes to stderr, the table to stdout: keep their order
        sys.stdout.reconfigure(line_buffering=True)
    argv_used = argv if argv is not None else sys.argv[1:]

    started = time.perf_counter()
    # benchmark scripts register with the harness; other bench_*.py files (bench_rss.py, a
    # standalone tool with its own command line) are run by a harness benchmark instead
    scripts = [s for s in sorted(HERE.glob("bench_*.py")) if "_harness" in s.read_text()]
    catalog = {s: list_benchmarks(s) for s in scripts}
    if args.list:
        for s, benches in catalog.items():
            for b in benches:
                base = b.get("upstream_baseline")
                print(
                    f"{b['name']:24} {s.name:20} impls={','.join(b['impls']):14} "
                    f"{'isolated ' if b['isolate'] else ''}"
                    f"{f'[vs upstream {base}] ' if base else ''}{b['description']}"
                )
        return 0
    wanted = {n.strip() for chunk in args.only for n in chunk.split(",") if n.strip()}
    known = {b["name"] for bs in catalog.values() for b in bs}
    if wanted - known:
        raise SystemExit(f"unknown benchmark(s): {sorted(wanted - known)}; known: {sorted(known)}")

    baselines = {
        b["name"]: b["upstream_baseline"]
        for bs in catalog.values()
        for b in bs
        if b.get("upstream_baseline")
    }
    bad = {v for v in baselines.values() if v not in known}
    if bad:
        raise SystemExit(f"unknown upstream_baseline benchmark(s): {sorted(bad)}")
    # what each side runs: the selection; upstream also the baselines of selected benchmarks
    run_names = {
        "ours": wanted,
        "upstream": wanted | {baselines[n] for n in wanted if n in baselines} if wanted else set(),
    }
    upstream_py = None if args.ours_only else ensure_upstream_venv(args.upstream_venv)
    impls = ["ours"] if upstream_py is None else ["ours", "upstream"]
    rounds = 1 if args.quick else args.rounds
    per_round: dict[str, list[dict[str, Any]]] = {impl: [] for impl in impls}
    order: list[str] = []
    descriptions: dict[str, str] = {}
    for benches in catalog.values():
        selected = [b for b in benches if not wanted or b["name"] in wanted]
        order += [b["name"] for b in selected]
        descriptions.update({b["name"]: b["description"] for b in selected})
    for rnd in range(rounds):
        print(f"-- round {rnd + 1}/{rounds}", file=sys.stderr)
        docs: dict[str, dict[str, Any]] = {impl: {} for impl in impls}
        # alternate which side goes first, so slow drift of the machine hits both alike
        for impl in impls if rnd % 2 == 0 else impls[::-1]:
            for script, benches in catalog.items():
                sel = run_names[impl]
                mine = [b for b in benches if (not sel or b["name"] in sel) and impl in b["impls"]]
                # one process for ordinary benchmarks, one each for isolated ones
                groups = [[b["name"] for b in mine if not b["isolate"]]]
                groups += [[b["name"]] for b in mine if b["isolate"]]
                for names in filter(None, groups):
                    doc = run_script(impl, upstream_py, script, names, args.quick)
                    _check_origin(impl, doc, args.upstream_venv)
                    _merge(docs[impl], doc)
        for impl in impls:
            per_round[impl].append(docs[impl])
    combined = {impl: combine_rounds(per_round.get(impl, [])) for impl in ("ours", "upstream")}
    docs = combined

    rows = build_rows(docs["ours"], docs["upstream"], order, baselines)
    total = time.perf_counter() - started
    print()
    print(f"ours:     {docs['ours'].get('graphai_file')}")
    print(f"upstream: {docs['upstream'].get('graphai_file', 'not run')}")
    print()
    print(table(rows, markdown=False))
    print(f"\ntotal {total:.0f} s")

    partial = args.quick or bool(wanted) or args.ours_only
    if args.write or not partial:
        dirty = " (dirty)" if _git("status", "--porcelain", "--", "graphai") else ""
        meta = {
            "argv": (" " + " ".join(argv_used)) if argv_used else "",
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "total_s": total,
            "machine": machine(),
            "git": (_git("rev-parse", "--short", "HEAD") or "?") + dirty,
            "upstream_pkgs": _pkg_versions(upstream_py),
        }
        write_results(HERE / "RESULTS.md", rows, docs["ours"], docs["upstream"], meta, descriptions)
        (HERE / "RESULTS.json").write_text(
            json.dumps(
                {"meta": meta, "rows": rows, "ours": docs["ours"], "upstream": docs["upstream"]},
                indent=1,
            )
            + "\n"
        )
        print(f"wrote {HERE / 'RESULTS.md'} and RESULTS.json")
    else:
        print("(partial run: RESULTS.md not written; pass --write to force)")
    failed = [r for r in rows if r["status"] == "MISS"]
    errors = docs["ours"].get("errors") or docs["upstream"].get("errors")
    if failed:
        print("targets missed: " + ", ".join(f"{r['benchmark']}.{r['metric']}" for r in failed))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
