"""
The ``graphai`` command: options, the runs (one streamed in full, or many with a progress
display), the banner, the report and ``--serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import graphai.telemetry
from graphai import Callback, Graph
from graphai._demo.report import render_report
from graphai._demo.sim import GRAPH_NAME, RunResult, Sim, build_graph, run_inputs
from graphai._demo.telemetry import Telemetry, setup_telemetry
from graphai._demo.view import Board, Out, StreamView, color_wanted, fmt_s
from graphai.telemetry import env

DETAIL_RUNS = 5  # multi-run mode: node boundaries are printed for the first runs only


async def run_one(
    graph: Graph,
    inp: dict[str, Any],
    no: int,
    out: Out,
    detail: str,
    board: Board | None,
) -> RunResult:
    cb = Callback()
    view = StreamView(out, graph, cb, no, detail)
    if board is not None:
        board.views[no] = view
    t0 = time.perf_counter()
    task = asyncio.ensure_future(graph.execute(inp, callback=cb))
    error = None
    try:
        await view.consume()
        result = await task
    except asyncio.CancelledError:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    except Exception as exc:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        result = {}
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    route = "call_tools" if "citations" in result and result.get("citations") else "direct"
    res = RunResult(
        no=no,
        ok=error is None,
        seconds=seconds,
        tokens=view.tokens,
        ttft=None if view.t_first is None else view.t_first - t0,
        route=route,
        error=error,
    )
    if board is not None:
        board.finished(res)
    elif detail == "full":
        g = out.g
        if error is None:
            answer = str(result.get("answer", ""))
            cites = ", ".join(result.get("citations", [])) or "none"
            out.line(
                f"{out.paint(g['ok'], '32')} execute() returned after {fmt_s(seconds)}: "
                f"answer ({len(answer)} chars, {view.tokens} tokens streamed), "
                f"citations: {cites}"
            )
        else:
            out.line(f"{out.paint(g['fail'], '31')} run failed: {error}")
    return res


async def run_all(args: argparse.Namespace, out: Out, graph: Graph) -> list[RunResult]:
    inputs = run_inputs(args.seed, args.runs)
    if args.runs == 1:
        out.line(f"{out.bold('query')}  {inputs[0]['query']}")
        out.line()
        return [await run_one(graph, inputs[0], 1, out, "full", None)]
    board = Board(out, args.runs)
    sem = asyncio.Semaphore(args.concurrency)

    async def guarded(i: int, inp: dict[str, Any]) -> RunResult:
        async with sem:
            detail = "boundaries" if i < DETAIL_RUNS else "none"
            return await run_one(graph, inp, i + 1, out, detail, board)

    if args.runs > DETAIL_RUNS:
        out.line(
            out.dim(
                f"(node boundaries are shown for the first {DETAIL_RUNS} runs; "
                "the others print one line when they finish)"
            )
        )
    ticker = asyncio.ensure_future(board.ticker())
    try:
        return list(await asyncio.gather(*(guarded(i, x) for i, x in enumerate(inputs))))
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        out.show_progress(None)


# -- command line ---------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def _addr(text: str) -> str:
    try:
        env.parse_addr(text, "--prometheus-addr")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    default_addr = os.environ.get(env.GRAPHAI_PROMETHEUS_ADDR, "").strip() or env.DEFAULT_PROMETHEUS_ADDR
    p = argparse.ArgumentParser(
        prog="graphai",
        description=(
            "graphai demo: a simulated support agent (a router choosing tools, two tools in "
            "parallel joined back, a streaming LLM-like node, a detached audit branch) streamed "
            "live to the terminal, followed by the OpenTelemetry telemetry it produced: a trace "
            "waterfall and a metrics summary. Everything is simulated locally with seeded "
            "randomness: no network, no API key."
        ),
        epilog=(
            "Telemetry: Prometheus /metrics is served while the demo runs. Spans go over OTLP "
            "when OTEL_EXPORTER_OTLP_ENDPOINT is set or --otlp is given (protocol from "
            "OTEL_EXPORTER_OTLP_PROTOCOL: grpc, the default, or http/protobuf); otherwise they "
            "are shown as a waterfall at the end. Other OTEL_* and GRAPHAI_* variables apply "
            "as documented in docs/telemetry.md. Colours only on a terminal; NO_COLOR=1 turns "
            "them off."
        ),
    )
    p.add_argument(
        "--runs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="number of graph runs (default 1: one run streamed token by token; more: a "
        "progress display with node boundaries per run)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="how many runs execute at the same time when --runs > 1 (default 4)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=7,
        help="random seed for queries, latencies and generated text (default 7): the same "
        "seed gives the same runs",
    )
    p.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="X",
        help="time scale: 10 runs everything 10x faster (default 1: realistic timing, first "
        "token after 200-400 ms, 30-60 tokens/s)",
    )
    p.add_argument(
        "--prometheus-addr",
        type=_addr,
        default=default_addr,
        metavar="HOST:PORT",
        help=f"where /metrics is served (default {default_addr}, from "
        f"{env.GRAPHAI_PROMETHEUS_ADDR} if set); port 0 picks a free port, and a busy port "
        "falls back to a free one",
    )
    p.add_argument(
        "--otlp",
        metavar="URL",
        default=None,
        help="send spans (and metrics, logs) over OTLP to this base URL, e.g. "
        "http://localhost:4317 (overrides OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="after the runs, keep /metrics up until Ctrl-C (for a Prometheus to scrape)",
    )
    p.add_argument(
        "--no-telemetry",
        action="store_true",
        help="run without any telemetry: no spans, no metrics endpoint, no summary",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colours: auto (default: on a terminal, unless NO_COLOR is set), always or never",
    )
    p.add_argument("--version", action="version", version=f"graphai {graphai.__version__}")
    return p


def _banner(out: Out, args: argparse.Namespace, tel: Telemetry) -> None:
    g = out.g
    a = g["arrow"]
    out.line(
        out.bold("graphai demo")
        + out.dim(
            f" {g['dot']} graph {GRAPH_NAME} {g['dot']} simulated LLM (no network) "
            f"{g['dot']} seed {args.seed} {g['dot']} speed {args.speed:g}x "
            f"{g['dot']} {args.runs} run{'s' if args.runs > 1 else ''}"
            + (f", {args.concurrency} at a time" if args.runs > 1 else "")
        )
    )
    out.line(
        out.dim(
            f"  receive {a} plan (router) {a} call_tools {a} [search_docs | lookup_account] "
            f"{a} join {a} synthesize (llm) {a} respond"
        )
    )
    out.line(
        out.dim(
            f"  small talk: plan {a} synthesize directly; after synthesize a detached branch "
            f"runs audit_redact {a} audit_store"
        )
    )
    if tel.handle is not None:
        where = f"OTLP {tel.otlp}" if tel.otlp else "in memory (waterfall at the end)"
        metrics = tel.metrics_url or "no /metrics endpoint"
        live = f" (live runs: {tel.metrics_url[: -len('/metrics')]}/streams)" if tel.metrics_url else ""
        out.line(out.dim(f"  telemetry: metrics {metrics}{live} {g['dot']} spans {where}"))
    for note in tel.notes:
        out.line(out.paint(f"  {note}", "33"))
    out.line()


async def _serve(out: Out, tel: Telemetry) -> None:
    out.line()
    out.line(
        out.bold("Serving")
        + f" {tel.metrics_url or '(no /metrics endpoint)'} until Ctrl-C"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _amain(args: argparse.Namespace, out: Out, tel: Telemetry) -> int:
    graph = build_graph(Sim(args.speed))
    results = await run_all(args, out, graph)
    render_report(out, tel, results)
    if args.serve:
        await _serve(out, tel)
    return 0 if all(r.ok for r in results) else 1


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """The ``graphai`` command. Returns 0 on success, 1 if a run failed, 130 on Ctrl-C."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    stream = stdout or sys.stdout
    isatty: Callable[[], bool] | None = getattr(stream, "isatty", None)
    out = Out(stream, color_wanted(stream, args.color), bool(isatty and isatty()))
    was_instrumented = graphai.telemetry.is_instrumented()
    try:
        tel = setup_telemetry(args, out)
    except ValueError as exc:  # an invalid OTEL_*/GRAPHAI_* variable
        print(f"graphai: {exc}", file=sys.stderr)
        return 2
    _banner(out, args, tel)
    t0 = time.perf_counter()
    code = 0
    try:
        code = asyncio.run(_amain(args, out, tel))
    except KeyboardInterrupt:
        out.show_progress(None)
        out.line()
        out.line(out.paint("interrupted", "33"))
        code = 130
    finally:
        if tel.handle is not None:
            tel.handle.shutdown(1.0 if tel.export_stuck else 5.0)
        if tel.otlp:
            import structlog

            structlog.reset_defaults()
        if args.no_telemetry and was_instrumented:
            graphai.telemetry.instrument()
    out.line(out.dim(f"done in {time.perf_counter() - t0:.1f}s"))
    if out.closed and stream is sys.stdout:
        # the reader is gone: point stdout at /dev/null so the interpreter's final flush
        # does not fail too
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    return code
