"""
gunicorn with uvicorn workers (docs/operations.md, "Multi-worker servers"), live: the FastAPI
SSE example (``examples/fastapi_sse.py``) under a real
``gunicorn -w 2 -k uvicorn_worker.UvicornWorker``, ``GRAPHAI_PROMETHEUS_PORTS`` giving each
worker its own ``/metrics`` port, and Debian's Prometheus scraping them.

- the example (``serve_app()``: ``configure()`` in the lifespan startup, so in each worker after
  the fork): ports ``base`` and ``base + 1``, one ``service.instance.id`` each, every run
  counted once; the same under ``--preload`` (the master binds nothing); after ``kill -HUP``
  with the old workers busy, the new ones retry and take the ports the old ones free.
- ``configure()`` at app load (``tests/integration/eager_sse.py``) under ``--preload``: it runs
  in the master before the fork. The master binds the first port of the range and keeps serving
  it (an empty ``/metrics``: it runs nothing); each worker reopens on the next free port
  (``after_fork=True``) with its own ``service.instance.id``. With one port per worker the range
  is full for the second worker, which logs ``telemetry.prometheus_failed ... after_fork=True``
  and has no endpoint; with one spare port every run is counted once. ``kill -HUP``: the new
  workers find the range full at fork time and take the ports the old workers free, by
  retrying in the background.
- ``--max-requests``: a recycled worker's replacement binds the port its predecessor freed.

Every wait is bounded; gunicorn runs in its own process group, stopped with SIGTERM, then
SIGKILL after a bound.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from tests._tools import free_port, free_port_range, poll
from tests.integration.multiworker_fixtures import (
    EXAMPLES,
    EXPECTED_BODY,
    check_runs_per_worker,
    get,
    instance_id,
    require_modules,
    run_server,
    server_env,
    stream_on_every_worker,
    wait_up,
)
from tests.integration.prom_fixtures import run_prometheus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS = 2
RUNS = 20
MAX_REQUESTS = 3
WORKER_CLASS = "uvicorn_worker.UvicornWorker"  # uvicorn.workers.UvicornWorker is deprecated
# the example: configure() in the app's lifespan startup, so in each worker after the fork
LIFESPAN_APP = "fastapi_sse:serve_app()"
# configure() at app load (tests/integration/eager_sse.py): in the master under --preload
EAGER_APP = "eager_sse:serve_app()"
HERE = Path(__file__).resolve().parent

# the example's logging format is "%(process)d %(levelname)s %(message)s"
_TELEMETRY_LINE = re.compile(
    r"^(\d+) \w+ telemetry\.prometheus_(started|failed) addr='([^']+)'(.*)$", re.MULTILINE
)


@dataclass(frozen=True)
class Endpoint:
    """One ``telemetry.prometheus_started`` / ``_failed`` line of the log."""

    pid: int
    started: bool
    addr: str  # the bound address, or the first port of the range tried
    after_fork: bool
    retried: bool = False  # bound by the retries after the range was found full


@dataclass(frozen=True)
class Gunicorn:
    proc: Popen[bytes]
    log: Path
    url: str
    metrics: list[str]  # every host:port of the GRAPHAI_PROMETHEUS_PORTS range

    @property
    def master(self) -> int:
        return self.proc.pid

    def workers(self) -> set[int]:
        """The master's live worker processes."""
        import psutil

        return {
            c.pid
            for c in psutil.Process(self.master).children()
            if c.status() != psutil.STATUS_ZOMBIE
        }

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                int(pid), kind == "started", addr, "after_fork=True" in rest, "retried=True" in rest
            )
            for pid, kind, addr, rest in _TELEMETRY_LINE.findall(self.log.read_text())
        ]

    def wait_booted(self, ports: set[str]) -> dict[int, Endpoint]:
        """Until ``WORKERS`` workers run, each has logged its endpoint (or its failure), and
        ``ports`` answer ``/metrics`` and the app ``/whoami``; ``{pid: endpoint}`` of the
        workers."""

        def booted() -> dict[int, Endpoint] | None:
            workers = self.workers()
            logged = {e.pid: e for e in self.endpoints() if e.pid in workers}
            return logged if len(workers) == WORKERS and set(logged) == workers else None

        logged = poll(booted, 30, interval=0.2, what="gunicorn workers logging their /metrics")
        urls = [f"http://{addr}/metrics" for addr in sorted(ports)] + [f"{self.url}/whoami"]
        wait_up(self.proc, self.log, urls, "gunicorn workers and their /metrics endpoints")
        return logged

    def replaced(self, old: set[int]) -> dict[int, Endpoint]:
        """After a HUP: until ``WORKERS`` new workers (none of ``old``) run and each has
        logged a started endpoint; ``{pid: endpoint}`` of the new workers."""

        def rebound() -> dict[int, Endpoint] | None:
            workers = self.workers()
            if len(workers) != WORKERS or workers & old:
                return None
            started = {e.pid: e for e in self.endpoints() if e.pid in workers and e.started}
            return started if set(started) == workers else None

        return poll(rebound, 30, interval=0.2, what="the new workers serving /metrics after HUP")


@contextmanager
def gunicorn(
    tmp_path: Path, ports: int, *options: str, app: str = LIFESPAN_APP
) -> Iterator[Gunicorn]:
    """``gunicorn -w 2 -k uvicorn_worker.UvicornWorker`` serving ``app`` on a free port,
    ``/metrics`` on a free range of ``ports`` ports."""
    require_modules("gunicorn", "uvicorn_worker", "httpx", "psutil")
    base, app_port = free_port_range(ports), free_port()
    env = server_env(
        GRAPHAI_PROMETHEUS_ADDR=f"127.0.0.1:{base}", GRAPHAI_PROMETHEUS_PORTS=str(ports)
    )
    cmd = [
        sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class",
        WORKER_CLASS, "--bind", f"127.0.0.1:{app_port}", "--pythonpath", f"{EXAMPLES},{HERE}",
        "--graceful-timeout", "5", "--no-control-socket", *options, app,
    ]  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with run_server(cmd, env, log) as proc:
        yield Gunicorn(
            proc,
            log,
            f"http://127.0.0.1:{app_port}",
            [f"127.0.0.1:{p}" for p in range(base, base + ports)],
        )


_TARGET_INFO = re.compile(r'^target_info\{.*service_instance_id="([^"]+)"', re.MULTILINE)
_RUNS_LINE = re.compile(r"^graphai_graph_duration_seconds_count\{[^}]*\} (\S+)$", re.MULTILINE)


def scrape_runs(addr: str) -> tuple[str | None, float]:
    """``(service_instance_id of target_info, runs of the graph)`` on ``http://addr/metrics``
    (OTel's Prometheus reader shows ``target_info`` only once something has been recorded)."""
    body = get(f"http://{addr}/metrics").decode()
    m = _TARGET_INFO.search(body)
    return (m.group(1) if m else None), sum(float(v) for v in _RUNS_LINE.findall(body))


def check_each_port_counts_its_worker(url: str, workers: dict[int, Endpoint]) -> None:
    """Streams until every worker served some; each worker's ``/metrics`` port then counts
    exactly the runs it served, under its own ``service.instance.id``."""
    served = Counter(pid for pid, _ in stream_on_every_worker(url, WORKERS, RUNS // 2))
    assert set(served) == set(workers)
    for pid, e in workers.items():

        def counted(addr: str = e.addr, want: int = served[pid]) -> tuple[str | None, float] | None:
            got = scrape_runs(addr)
            return got if got[1] == want else None

        assert poll(counted, 10, what=f"worker {pid}'s runs") == (instance_id(pid), served[pid])


def stream_one(url: str, dropped: list[str]) -> int:
    """One SSE stream (exactly the example's tokens); the pid of the worker that served it.
    A connection that a worker at its ``--max-requests`` limit accepted and then closed
    unanswered (uvicorn's shutdown) is retried, at most 3 times, and noted in ``dropped``."""
    import httpx

    for _ in range(3):
        try:
            with httpx.stream(
                "POST", f"{url}/stream", json={"query": "q", "delay": 0}, timeout=10
            ) as r:
                assert r.status_code == 200
                assert r.read().decode() == EXPECTED_BODY
                return int(r.headers["x-worker-pid"])
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            dropped.append(repr(exc))
    pytest.fail(f"3 streams in a row dropped: {dropped}")


def test_gunicorn_workers_each_expose_metrics_and_prometheus_counts_every_run(
    tmp_path: Path,
) -> None:
    t0 = time.monotonic()
    with gunicorn(tmp_path, WORKERS) as g:
        logged = g.wait_booted(set(g.metrics))
        # each worker configured itself after the fork: first free port of the range each
        assert sorted(e.addr for e in logged.values()) == g.metrics, logged
        assert all(e.started and not e.after_fork for e in logged.values()), logged
        assert [e for e in g.endpoints() if e.pid == g.master] == []
        served = stream_on_every_worker(g.url, WORKERS, RUNS)
        assert {pid for pid, _ in served} == set(logged)
        with run_prometheus(tmp_path / "prom", g.metrics, rule_files=[]) as prom:
            ids = check_runs_per_worker(prom, served, g.metrics)
        assert ids == {e.addr: instance_id(pid) for pid, e in logged.items()}
    print(f"gunicorn: {time.monotonic() - t0:.1f}s, {len(served)} runs, {ids}")


def test_gunicorn_preload_master_keeps_the_first_port_workers_reopen_on_the_rest(
    tmp_path: Path,
) -> None:
    """``--preload`` with ``configure()`` at app load and one spare port (docs: "give the range
    one port more than the worker count"): the fork-safety path end to end."""
    t0 = time.monotonic()
    with gunicorn(tmp_path, WORKERS + 1, "--preload", app=EAGER_APP) as g:
        logged = g.wait_booted(set(g.metrics))
        master_addr, *worker_addrs = g.metrics
        # configure() ran in the master at app load (serve_app() is the app spec), before fork
        assert [e for e in g.endpoints() if e.pid == g.master] == [
            Endpoint(g.master, True, master_addr, False)
        ]
        # each worker left the master's socket alone and bound the next free port of the range
        assert sorted(e.addr for e in logged.values()) == worker_addrs, logged
        assert all(e.started and e.after_fork for e in logged.values()), logged
        # the master's endpoint stays up, serving its own registry: empty, it runs no graph
        assert get(f"http://{master_addr}/metrics") == b""
        served = stream_on_every_worker(g.url, WORKERS, RUNS)
        assert {pid for pid, _ in served} == set(logged)
        # Prometheus scrapes the whole range, as a scrape config listing its ports would
        with run_prometheus(tmp_path / "prom", g.metrics, rule_files=[]) as prom:
            ids = check_runs_per_worker(prom, served, worker_addrs)
            assert ids == {e.addr: instance_id(pid) for pid, e in logged.items()}
            assert instance_id(g.master) not in ids.values()
            master_series = prom.query(
                f'count({{job="graphai", instance="{master_addr}", __name__!~"up|scrape_.*"}})'
            )
            assert master_series == [], master_series  # up, with no series of its own
    print(f"gunicorn --preload: {time.monotonic() - t0:.1f}s, {len(served)} runs, {ids}")


def test_gunicorn_preload_with_one_port_per_worker_leaves_a_worker_without_metrics(
    tmp_path: Path,
) -> None:
    """The limit of ``--preload`` with ``configure()`` at import: the master's endpoint takes
    a port of the range, so with ``GRAPHAI_PROMETHEUS_PORTS`` = workers the last worker finds
    it full and says so (never a silently dead endpoint); its runs reach no ``/metrics``."""
    with gunicorn(tmp_path, WORKERS, "--preload", app=EAGER_APP) as g:
        master_addr, worker_addr = g.metrics
        logged = g.wait_booted({master_addr, worker_addr})
        assert [e for e in g.endpoints() if e.pid == g.master] == [
            Endpoint(g.master, True, master_addr, False)
        ]
        by_kind = sorted(logged.values(), key=lambda e: not e.started)
        assert [(e.started, e.addr, e.after_fork) for e in by_kind] == [
            (True, worker_addr, True),
            (False, master_addr, True),  # failed: the range (from its first port) is full
        ], logged
        failed = next(
            line for line in g.log.read_text().splitlines() if "prometheus_failed" in line
        )
        assert "Multi-worker servers" in failed and "GRAPHAI_PROMETHEUS_PORTS" in failed, failed
        holder, portless = by_kind[0].pid, by_kind[1].pid
        served = Counter(pid for pid, _ in stream_on_every_worker(g.url, WORKERS, RUNS // 2))
        assert set(served) == {holder, portless}

        def scraped() -> tuple[str | None, float] | None:
            got = scrape_runs(worker_addr)
            return got if got[1] == served[holder] else None

        # the range's two ports show the holder's runs only: the port-less worker's are lost
        assert poll(scraped, 10, what="the worker's runs") == (instance_id(holder), served[holder])
        assert get(f"http://{master_addr}/metrics") == b""
        print(f"gunicorn --preload, 2 ports: {dict(served)} served, {served[holder]} on /metrics")


def test_gunicorn_preload_hup_new_workers_take_the_ports_the_old_ones_free(
    tmp_path: Path,
) -> None:
    """``kill -HUP`` under ``--preload`` with ``configure()`` at app load: gunicorn forks the
    new workers before it stops the old ones, so each new worker's after-fork reopen finds the
    whole range taken (master + old workers) and logs ``telemetry.prometheus_failed ... after_fork=True`` once. It then tries
    again in the background and takes a port as soon as an old worker frees it
    (``telemetry.prometheus_started ... after_fork=True retried=True``): every worker port
    serves a new worker's ``/metrics`` again, under that worker's ``service.instance.id``."""
    with gunicorn(tmp_path, WORKERS + 1, "--preload", app=EAGER_APP) as g:
        master_addr, *worker_addrs = g.metrics
        old = g.wait_booted(set(g.metrics))
        assert sorted(e.addr for e in old.values()) == worker_addrs
        os.kill(g.master, signal.SIGHUP)
        new = g.replaced(set(old))
        assert sorted(e.addr for e in new.values()) == worker_addrs
        assert all(e.after_fork and e.retried for e in new.values()), new
        first_tries = [(e.addr, e.after_fork) for e in g.endpoints() if e.pid in new and not e.started]
        assert first_tries == [(master_addr, True)] * WORKERS  # the range was full, said once each
        assert [e.pid for e in g.endpoints() if e.pid == g.master] == [g.master]  # no reload
        check_each_port_counts_its_worker(g.url, new)
        assert get(f"http://{master_addr}/metrics") == b""


def test_gunicorn_preload_with_lifespan_configure_binds_no_port_in_the_master(
    tmp_path: Path,
) -> None:
    """The example under ``--preload``: the master loads the app (``serve_app()``) but
    ``configure()`` runs in the lifespan startup of each worker, so the master binds no port,
    one port per worker suffices, and Prometheus counts every run once."""
    with gunicorn(tmp_path, WORKERS, "--preload") as g:
        logged = g.wait_booted(set(g.metrics))
        assert [e for e in g.endpoints() if e.pid == g.master] == []
        assert sorted(e.addr for e in logged.values()) == g.metrics, logged
        assert all(e.started and not e.after_fork for e in logged.values()), logged
        served = stream_on_every_worker(g.url, WORKERS, RUNS)
        assert {pid for pid, _ in served} == set(logged)
        with run_prometheus(tmp_path / "prom", g.metrics, rule_files=[]) as prom:
            ids = check_runs_per_worker(prom, served, g.metrics)
        assert ids == {e.addr: instance_id(pid) for pid, e in logged.items()}


@contextmanager
def streams_held(url: str, pids: set[int], delay: float = 0.4) -> Iterator[None]:
    """Slow SSE streams (12 tokens, ``delay`` s apart) in threads until each worker in ``pids``
    serves one (bounded): a worker busy with a stream keeps its port after a HUP until the
    stream ends or ``--graceful-timeout`` passes. The threads are joined (bounded) on exit."""
    import queue
    import threading

    import httpx

    got: queue.Queue[int] = queue.Queue()

    def hold() -> None:
        try:
            with httpx.stream(
                "POST", f"{url}/stream", json={"query": "q", "delay": delay}, timeout=15
            ) as r:
                got.put(int(r.headers["x-worker-pid"]))
                for _ in r.iter_bytes():
                    pass
        except httpx.HTTPError:  # cut by the worker's graceful shutdown: expected here
            pass

    threads: list[threading.Thread] = []
    holding: set[int] = set()
    deadline = time.monotonic() + 10
    try:
        while not pids <= holding:
            assert time.monotonic() < deadline, f"streams held on {holding}, wanted {pids}"
            t = threading.Thread(target=hold, daemon=True)
            t.start()
            threads.append(t)
            with contextlib.suppress(queue.Empty):
                holding.add(got.get(timeout=0.5))
        yield
    finally:
        for t in threads:
            t.join(15)
        assert not any(t.is_alive() for t in threads), "a held stream outlived its bound"


def test_gunicorn_hup_new_workers_configure_and_take_the_ports_the_old_ones_free(
    tmp_path: Path,
) -> None:
    """``kill -HUP`` with the example (no ``--preload``, one port per worker): each new worker
    configures in its lifespan startup while the old workers still hold the range, logs
    ``telemetry.prometheus_failed ... retrying_for_s=60.0`` once, and takes a port as soon as an
    old worker exits (``retried=True``): every port serves a new worker, under its id. Each old
    worker is busy with a slow stream at the HUP, so it holds its port while the new workers
    start (idle old workers can exit before the new ones have loaded the app)."""
    with gunicorn(tmp_path, WORKERS) as g, contextlib.ExitStack() as held:
        old = g.wait_booted(set(g.metrics))
        assert sorted(e.addr for e in old.values()) == g.metrics
        held.enter_context(streams_held(g.url, set(old)))
        os.kill(g.master, signal.SIGHUP)
        new = g.replaced(set(old))
        assert sorted(e.addr for e in new.values()) == g.metrics
        assert all(e.retried and not e.after_fork for e in new.values()), new
        log = g.log.read_text()
        for pid in new:
            (first,) = [ln for ln in log.splitlines() if ln.startswith(f"{pid} ") and "prometheus_failed" in ln]
            assert "retrying_for_s=60.0" in first and "after_fork" not in first, first
        check_each_port_counts_its_worker(g.url, new)


@pytest.mark.parametrize("preload", [False, True], ids=["plain", "preload"])
def test_gunicorn_recycled_worker_binds_the_port_its_predecessor_freed(
    tmp_path: Path, preload: bool
) -> None:
    """``--max-requests``: a worker exits after ``MAX_REQUESTS`` requests and the master forks
    a replacement, which configures afresh in its lifespan startup (plain) or reopens the
    master's endpoint config after the fork (``--preload`` with ``configure()`` at app load); either way it takes the port the old worker released, and
    its ``/metrics`` counts its own runs under its own ``service.instance.id``."""
    t0 = time.monotonic()
    ports = WORKERS + 1 if preload else WORKERS
    options = ["--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", "0"]
    preloaded = ["--preload"] if preload else []
    with gunicorn(tmp_path, ports, *options, *preloaded, app=EAGER_APP if preload else LIFESPAN_APP) as g:
        worker_addrs = g.metrics[1:] if preload else g.metrics
        first = g.wait_booted(set(g.metrics))  # one /whoami request
        before = {e.addr: pid for pid, e in first.items()}
        assert sorted(before) == worker_addrs

        # sequential streams, one connection each, until a replacement worker serves one
        served: list[int] = []
        dropped: list[str] = []
        for _ in range(2 * WORKERS * MAX_REQUESTS):
            served.append(stream_one(g.url, dropped))
            if served[-1] not in first:
                break
        fresh = served[-1]
        assert fresh not in first, f"no worker was recycled: {served}"

        def settled() -> dict[str, int] | None:
            workers = g.workers()
            mine = {e.addr: e.pid for e in g.endpoints() if e.started and e.pid in workers}
            return mine if len(workers) == WORKERS and set(mine.values()) == workers else None

        after = poll(settled, 30, interval=0.2, what="every live worker on a /metrics port")
        assert sorted(after) == worker_addrs, after
        recycled = {a for a, pid in before.items() if after[a] != pid}
        assert all(after[a] not in first for a in recycled), (before, after)
        (fresh_addr,) = [a for a, pid in after.items() if pid == fresh]
        assert fresh_addr in recycled, (before, after)

        # the replacement served exactly one stream so far: its /metrics says so, under its id
        def counted() -> tuple[str | None, float] | None:
            got = scrape_runs(fresh_addr)
            return got if got[1] else None

        assert poll(counted, 10, what="the replacement's run") == (instance_id(fresh), 1.0)
        new = [e for e in g.endpoints() if e.pid in set(after.values()) - set(first)]
        assert new and all(e.after_fork is preload for e in new), new
        assert [e for e in g.endpoints() if not e.started] == [], g.log.read_text()[-3000:]
        assert g.proc.poll() is None
    took = time.monotonic() - t0
    print(
        f"gunicorn --max-requests (preload={preload}): {took:.1f}s, {before} -> {after},",
        f"{len(served)} streams, {len(dropped)} dropped by an exiting worker and retried",
    )
