"""
Shared by the live multi-worker tests (``test_multiworker.py``: ``uvicorn --workers``;
``test_gunicorn.py``): free port ranges, a pre-fork server run as a subprocess in its own
process group and always stopped (TERM, then KILL after a bound), concurrent SSE streams
against ``examples/fastapi_sse.py`` checked token for token, and the Prometheus queries that
check each run is counted exactly once, on the worker that served it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tests._tools import IN_CI, poll
from tests.integration.prom_fixtures import Prometheus

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
UP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

# what POST /stream of examples/fastapi_sse.py sends: every token of the `answer` node, between
# graphai's start/node/end markers, one SSE event each (the multi-line token as several lines)
EXPECTED_TOKENS = (
    "<graphai:answer:start:>",
    "<graphai:answer:>",
    "Refunds", " go", " back", " to", " the", " original", " payment", " method",
    " (see refund-policy).",
    "\n\n```bash\ncurl -X POST /refunds\n```\n",
    "Anything", " else?",
    "<graphai:answer:end:>",
    "<graphai:END:>",
)  # fmt: skip
EXPECTED_BODY = "".join(
    "".join(f"data: {line}\n" for line in tok.split("\n")) + "\n" for tok in EXPECTED_TOKENS
)
RUNS_QUERY = "graphai_graph_duration_seconds_count"  # one sample per finished graph run


def require_modules(*names: str) -> None:
    """Skip (fail under CI=true) unless every module in ``names`` is importable."""
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed (pip install -e '.[dev]')"
        if IN_CI:
            pytest.fail(f"{msg}; CI=true requires it")
        pytest.skip(msg)


def get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


def server_env(**extra: str) -> dict[str, str]:
    """This process' environment without OTel, graphai or gunicorn settings, the repository on
    ``PYTHONPATH``, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "GRAPHAI_")) and k != "GUNICORN_CMD_ARGS"
    }
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


@contextmanager
def run_server(
    cmd: Sequence[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` in a new session (its workers in its process group), output to ``log``; at exit
    the group gets SIGTERM, then SIGKILL if the leader is not gone within ``STOP_TIMEOUT_S``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)


def wait_up(proc: subprocess.Popen[bytes], log: Path, urls: Sequence[str], what: str) -> None:
    """Poll (bounded) until every URL in ``urls`` answers; fail at once if ``proc`` exits."""

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with rc {proc.returncode}:\n{log.read_text()[-3000:]}")
        for u in urls:
            get(u)  # raises until it answers
        return True

    poll(up, UP_TIMEOUT_S, interval=0.2, what=what)


async def stream_all(url: str, n: int) -> list[tuple[int, str]]:
    """``n`` concurrent SSE requests; (worker pid header, body) each."""
    import httpx

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, str]:
        payload = {"query": f"q{i}", "delay": 0.03}  # ~0.4 s per stream: they overlap
        async with client.stream("POST", f"{url}/stream", json=payload) as resp:
            assert resp.status_code == 200
            body = (await resp.aread()).decode()
            return int(resp.headers["x-worker-pid"]), body

    async with httpx.AsyncClient(timeout=20) as client:
        return list(await asyncio.gather(*(one(client, i) for i in range(n))))


def stream_on_every_worker(
    url: str, workers: int, runs: int, budget_s: float = 30.0
) -> list[tuple[int, str]]:
    """Rounds of ``runs`` concurrent SSE streams until ``workers`` distinct workers have served
    some (within ``budget_s``); every body must be exactly :data:`EXPECTED_BODY`."""
    deadline = time.monotonic() + budget_s
    served: list[tuple[int, str]] = []
    while len({pid for pid, _ in served}) < workers and time.monotonic() < deadline:
        served += asyncio.run(stream_all(url, runs))
    pids = {pid for pid, _ in served}
    assert len(pids) == workers, f"all {len(served)} streams landed on workers {pids}"
    wrong = [body for _, body in served if body != EXPECTED_BODY]
    assert not wrong, f"{len(wrong)} of {len(served)} streams differ; first: {wrong[0]!r}"
    return served


def instance_id(pid: int) -> str:
    """The ``service.instance.id`` graphai gives the process ``pid`` of this host."""
    return f"{socket.gethostname()}-{pid}"


def check_runs_per_worker(
    prom: Prometheus, served: Sequence[tuple[int, str]], workers: Sequence[str]
) -> dict[str, str]:
    """Prometheus (scraping at least the ``workers`` targets) counts exactly ``len(served)``
    runs of the example's graph, each on the ``/metrics`` target of the worker that served it,
    and ``target_info`` gives each worker target the ``service.instance.id`` of its pid.
    Returns ``{instance: service_instance_id}``."""
    poll(prom.targets_up, 20, interval=0.2, what="every scrape target up")
    by_graph = f'sum by (graphai_graph_name) ({RUNS_QUERY}{{job="graphai"}})'

    def counted() -> list[dict[str, Any]] | None:
        res = prom.query(by_graph)
        return res if res and float(res[0]["value"][1]) == len(served) else None

    res = poll(counted, 20, interval=0.2, what=f"Prometheus counting {len(served)} runs")
    assert [r["metric"]["graphai_graph_name"] for r in res] == ["sse-demo"]
    ids = {
        r["metric"]["instance"]: r["metric"]["service_instance_id"]
        for r in prom.query('target_info{job="graphai"}')
    }
    assert sorted(ids) == sorted(workers), ids
    pids = {pid for pid, _ in served}
    assert sorted(ids.values()) == sorted(instance_id(pid) for pid in pids), ids
    per_instance = {
        r["metric"]["instance"]: float(r["value"][1])
        for r in prom.query(f'sum by (instance) ({RUNS_QUERY}{{job="graphai"}})')
    }
    expected = {
        inst: float(sum(1 for pid, _ in served if instance_id(pid) == sid))
        for inst, sid in ids.items()
    }
    assert per_instance == expected, (per_instance, expected)
    return ids
