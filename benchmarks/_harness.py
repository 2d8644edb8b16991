"""
The benchmark registry and the command line every ``bench_*.py`` script shares.

A benchmark script registers async functions with :func:`benchmark` and ends with
``raise SystemExit(main())``. ``run.py`` runs each script under two interpreters (ours and
upstream graphai-lib 0.0.12) and compares the JSON they print.

Adding a benchmark::

    @benchmark("stream_otel", "Streaming with full telemetry", impls=("ours",))
    async def stream_otel(ctx: Context) -> Result:
        from graphai.telemetry import configure   # ours-only imports go inside the function
        ...
        return {"tokens_per_s": metric(n / med, "tokens/s", "higher", target="ratio>=2.0")}

- ``impls``: where it runs; ``("ours",)`` for telemetry benchmarks (upstream has none), and
  then import our-only modules inside the function, since upstream imports the script too.
- ``isolate=True``: ``run.py`` gives it a process of its own (peak-RSS measurements, anything
  that installs global telemetry state).
- ``upstream_baseline="other_bench"``: for an ours-only benchmark, compare each metric with the
  same-named metric of *upstream's* ``other_bench`` from the same run (``stream_telemetry``
  against upstream's ``stream_plain``); ``run.py`` then runs that upstream benchmark even when
  only this one is selected, and ``ratio`` targets use that cross-ratio.
- ``ctx.quick`` / ``ctx.size(full, quick)``: smaller sizes for ``--quick`` smoke runs.
- A result is ``{metric_name: metric(...)}``, optionally with an ``"info"`` key holding a
  dict of extra JSON-able details (sample lists, counts) shown only in the JSON.
- ``target``: ``"ours<=5"``, ``"ours>=X"`` (absolute, on our value) or ``"ratio>=2.0"``,
  ``"ratio<=X"`` (ours/upstream); ``run.py`` checks it and marks the row.

Command line (``python bench_x.py --help``): ``--impl ours|upstream``, ``--only NAME[,NAME]``
(repeatable), ``--quick``, ``--list``, ``--out FILE`` (JSON; stdout by default).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BENCHMARKS",
    "Bench",
    "Context",
    "Result",
    "benchmark",
    "main",
    "measure",
    "metric",
]

Result = dict[str, Any]
BenchFn = Callable[["Context"], Awaitable[Result]]

IMPLS = ("ours", "upstream")


@dataclass
class Bench:
    name: str
    fn: BenchFn
    description: str
    impls: tuple[str, ...] = IMPLS
    isolate: bool = False
    upstream_baseline: str | None = None


BENCHMARKS: dict[str, Bench] = {}


def benchmark(
    name: str,
    description: str,
    *,
    impls: tuple[str, ...] = IMPLS,
    isolate: bool = False,
    upstream_baseline: str | None = None,
) -> Callable[[BenchFn], BenchFn]:
    """Register an async benchmark function under ``name`` (unique across all scripts).
    ``upstream_baseline``: the benchmark whose upstream result this one is compared with
    (metric by metric, same names) when upstream does not run this one itself."""

    def deco(fn: BenchFn) -> BenchFn:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} registered twice")
        bad = set(impls) - set(IMPLS)
        if bad:
            raise ValueError(f"benchmark {name!r}: unknown impls {sorted(bad)}")
        if upstream_baseline is not None and "upstream" in impls:
            raise ValueError(f"benchmark {name!r}: upstream_baseline is for ours-only benchmarks")
        BENCHMARKS[name] = Bench(name, fn, description, tuple(impls), isolate, upstream_baseline)
        return fn

    return deco


@dataclass
class Context:
    impl: str
    quick: bool
    repeats: int
    warmup: int = 1
    notes: list[str] = field(default_factory=list)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def metric(
    value: float,
    unit: str,
    better: str,
    *,
    target: str | None = None,
    samples: list[float] | None = None,
) -> dict[str, Any]:
    """One reported number. ``better``: "higher" or "lower"."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    out: dict[str, Any] = {"value": value, "unit": unit, "better": better}
    if target is not None:
        out["target"] = target
    if samples is not None:
        out["samples"] = samples
    return out


async def measure(
    run_once: Callable[[], Awaitable[float]], repeats: int, warmup: int = 1
) -> list[float]:
    """Call ``run_once`` (which returns the seconds it measured) ``warmup`` times untimed,
    then ``repeats`` times; a full GC runs before each call so collection debt from one
    repeat does not land in the next. Returns the timed samples."""
    for _ in range(warmup):
        gc.collect()
        await run_once()
    samples = []
    for _ in range(repeats):
        gc.collect()
        samples.append(await run_once())
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def _graphai_meta() -> dict[str, Any]:
    import graphai

    version = getattr(graphai, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version("graphai-lib")
        except Exception:
            version = "unknown"
    return {"graphai_file": graphai.__file__, "graphai_version": version}


def _select(only: list[str]) -> list[Bench]:
    names: list[str] = []
    for chunk in only:
        names.extend(n.strip() for n in chunk.split(",") if n.strip())
    if not names:
        return list(BENCHMARKS.values())
    return [BENCHMARKS[n] for n in names if n in BENCHMARKS]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="graphai benchmark script (see benchmarks/_harness.py)")
    p.add_argument("--impl", choices=IMPLS, default="ours", help="which graphai this process runs")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="run only these benchmarks (names not in this script are ignored)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, 3 repeats (smoke run)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5, quick 3)")
    p.add_argument("--list", action="store_true", help="print the registered benchmarks as JSON")
    p.add_argument("--out", default=None, help="write the JSON here instead of stdout")
    args = p.parse_args(argv)

    if args.list:
        print(
            json.dumps(
                [
                    {
                        "name": b.name,
                        "description": b.description,
                        "impls": list(b.impls),
                        "isolate": b.isolate,
                        "upstream_baseline": b.upstream_baseline,
                    }
                    for b in BENCHMARKS.values()
                ]
            )
        )
        return 0

    # upstream's Callback() warns on every construction; warnings are noise here
    warnings.simplefilter("ignore")
    repeats = args.repeats or (3 if args.quick else 5)
    doc: dict[str, Any] = {
        "impl": args.impl,
        "python": platform.python_version(),
        "executable": sys.executable,
        "pid": os.getpid(),
        "quick": args.quick,
        "repeats": repeats,
        **_graphai_meta(),
        "results": {},
        "errors": {},
    }
    for b in _select(args.only):
        if args.impl not in b.impls:
            continue
        ctx = Context(impl=args.impl, quick=args.quick, repeats=repeats)
        t0 = time.perf_counter()
        try:
            res = asyncio.run(b.fn(ctx))
        except Exception as exc:  # report and go on with the other benchmarks
            doc["errors"][b.name] = f"{type(exc).__name__}: {exc}"
            print(f"[{args.impl}] {b.name} FAILED: {exc!r}", file=sys.stderr)
            continue
        info = res.pop("info", {})
        doc["results"][b.name] = {
            "description": b.description,
            "metrics": res,
            "info": info,
            "notes": ctx.notes,
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        print(f"[{args.impl}] {b.name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 1 if doc["errors"] else 0


async def stream_once(g: Any, n: int, seen: list[int]) -> float:
    """Run a one-node streaming graph once with a consumer draining ``aiter()``; seconds from
    ``execute`` start until the consumer saw END. Appends the item count to ``seen``."""
    from graphai import Callback

    cb = Callback()
    count = 0

    async def consume() -> float:
        nonlocal count
        async for _ in cb.aiter():
            count += 1
        return time.perf_counter()

    consumer = asyncio.ensure_future(consume())
    t0 = time.perf_counter()
    result = await g.execute({"n": n}, callback=cb)
    t_end = await consumer
    if result.get("done") != n:
        raise AssertionError(f"unexpected result {result!r}")
    seen.append(count)
    return t_end - t0
