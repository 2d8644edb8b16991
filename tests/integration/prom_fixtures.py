"""
Debian's Prometheus and Alertmanager as context managers for live tests, plus a webhook
receiver thread that records what Alertmanager delivers.

Everything listens on 127.0.0.1 free ports, keeps its data in a temp dir, is polled for
readiness with a bound, and is stopped (TERM, then KILL) at exit. Prometheus scrapes and
evaluates every second and resends firing alerts every second, so tests see alerts within
seconds of their ``for:``. The skip/fail policy for missing binaries is ``require_tool``'s.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._tools import free_port, poll, require_tool

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
INTERVAL = "1s"


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _ready(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as resp:
        return resp.status == 200


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, what: str) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with rc {proc.returncode}:\n{log.read_text()[-3000:]}")
        return _ready(url)

    poll(ready, READY_TIMEOUT_S, what=f"{what} ready at {url}")


def render_prometheus_config(
    scrape_targets: Sequence[str],
    rule_files: Sequence[Path],
    alertmanager: str | None = None,
    job: str = "graphai",
) -> str:
    """A Prometheus config: 1 s scrape and evaluation of ``scrape_targets`` (``host:port``) as
    job ``job``, the given rule files, and optionally one Alertmanager."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(scrape_targets)}]}
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True)
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        body = _get_json(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (raises on a PromQL error)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def label_values(self, label: str, match: str) -> list[str]:
        return list(self.api(f"label/{label}/values", **{"match[]": match}))

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing)."""
        return list(self.api("alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        return [r for g in self.api("rules")["groups"] for r in g["rules"]]

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


@contextmanager
def run_prometheus(
    tmp: Path,
    scrape_targets: Sequence[str],
    rule_files: Sequence[Path],
    alertmanager: str | None = None,
) -> Iterator[Prometheus]:
    """Start Debian's ``prometheus`` on 127.0.0.1:<free port>; stop it on exit."""
    binary = require_tool("prometheus", "apt-get install --no-install-recommends prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "prometheus.yml"
    config.write_text(render_prometheus_config(scrape_targets, rule_files, alertmanager))
    port = free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--rules.alert.resend-delay={INTERVAL}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait_ready(proc, f"{prom.url}/-/ready", log, "prometheus")
        yield prom
    finally:
        _stop(proc)


@dataclass(frozen=True)
class Alertmanager:
    url: str
    address: str  # host:port, for Prometheus' alerting config
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def run_alertmanager(tmp: Path, webhook_url: str) -> Iterator[Alertmanager]:
    """Start Debian's ``prometheus-alertmanager`` (no HA gossip) routing every alert to
    ``webhook_url`` within a second; stop it on exit."""
    binary = require_tool(
        "prometheus-alertmanager",
        "apt-get install --no-install-recommends prometheus-alertmanager",
    )
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "webhook",
                    "group_by": ["alertname"],
                    "group_wait": INTERVAL,
                    "group_interval": INTERVAL,
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "webhook", "webhook_configs": [{"url": webhook_url}]}],
            }
        )
    )
    port = free_port()
    log = tmp / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    am = Alertmanager(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", proc, log)
    try:
        _wait_ready(proc, f"{am.url}/-/ready", log, "alertmanager")
        yield am
    finally:
        _stop(proc)


@dataclass
class WebhookReceiver:
    """Alertmanager webhook payloads received, in arrival order."""

    url: str = ""
    payloads: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a for p in self.payloads for a in p.get("alerts", [])]


@contextmanager
def run_webhook_receiver() -> Iterator[WebhookReceiver]:
    """A tiny HTTP server thread on 127.0.0.1:<free port> recording POSTed JSON."""
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.payloads.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STOP_TIMEOUT_S)
