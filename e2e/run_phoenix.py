#!/usr/bin/env python3
"""
End-to-end check against a real trace viewer: Arize Phoenix (opt-in; ``make e2e``).

1. Creates ``e2e/.phoenix-venv`` with ``arize-phoenix`` on first use (about 850 MB, ~40 s;
   kept for later runs).
2. Starts ``phoenix serve`` on free loopback ports with its own working directory.
3. Runs the graphai demo with spans over **OTLP/HTTP** to Phoenix (resource attribute
   ``openinference.project.name=graphai-demo`` picks the project). Phoenix's gRPC receiver
   binds all interfaces whatever ``PHOENIX_HOST`` says, so the demo never uses it: only the
   HTTP endpoint, which honours the loopback host. Phoenix takes traces only (metrics and logs
   OTLP requests get 405), so those exporters are switched off.
4. Reads the spans back through ``GET /v1/projects/graphai-demo/spans`` and checks the tree:
   one ``invoke_workflow support-agent`` root per run, every node span its child.
5. Takes a headless Chromium screenshot of one trace into ``docs/img/phoenix-trace.png``
   (``--no-screenshot`` skips it; without Chromium, running as root installs Debian's
   ``chromium``, otherwise the step fails with a message).
6. Stops Phoenix (SIGTERM, then SIGKILL after 15 s).

Exit code 0 when every check passed; the last line is a JSON summary. Every wait is bounded.

    .venv/bin/python e2e/run_phoenix.py [--screenshot PATH | --no-screenshot] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT / "e2e"
VENV = E2E / ".phoenix-venv"
PHOENIX_VERSION = os.environ.get("PHOENIX_VERSION", "20.26.1")
PROJECT = "graphai-demo"
GRAPH_RUN_SPAN = "invoke_workflow support-agent"
# node spans every run of the demo has (small talk skips the tools)
ALWAYS = {"receive", "plan", "chat sim-llm-large", "respond", "audit_redact", "execute_tool audit_store"}
TOOLS = {"call_tools", "execute_tool search_docs", "execute_tool lookup_account"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,900",
    "--virtual-time-budget=15000",
]

INSTALL_TIMEOUT = 900
READY_TIMEOUT = 90
DEMO_TIMEOUT = 120
READBACK_TIMEOUT = 30
SCREENSHOT_TIMEOUT = 120


def log(msg: str) -> None:
    print(f"[e2e] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


# -- 1. the venv ---------------------------------------------------------------------------------
def ensure_phoenix() -> Path:
    phoenix = VENV / "bin" / "phoenix"
    marker = VENV / f".installed-{PHOENIX_VERSION}"
    if phoenix.exists() and marker.exists():
        return phoenix
    t0 = time.monotonic()
    if not (VENV / "bin" / "python").exists():
        log(f"creating {VENV.relative_to(ROOT)}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    log(f"installing arize-phoenix=={PHOENIX_VERSION} (first run only; ~850 MB)")
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         f"arize-phoenix=={PHOENIX_VERSION}"],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    marker.write_text(f"{PHOENIX_VERSION}\n")
    log(f"installed in {time.monotonic() - t0:.0f}s")
    return phoenix


# -- 2. phoenix ----------------------------------------------------------------------------------
class Phoenix:
    def __init__(self, binary: Path, workdir: Path) -> None:
        self.http_port = free_port()
        self.grpc_port = free_port()
        while self.grpc_port == self.http_port:
            self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = workdir / "phoenix.log"
        env = {
            **os.environ,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.http_port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),  # binds *:port; unused by this test
            "PHOENIX_WORKING_DIR": str(workdir / "data"),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        for k in list(env):
            if k.startswith("OTEL_"):
                del env[k]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve"], env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < READY_TIMEOUT:
            if self.proc.poll() is not None:
                raise RuntimeError(f"phoenix exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"phoenix not ready after {READY_TIMEOUT}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


# -- 3. the demo ---------------------------------------------------------------------------------
def run_demo(phoenix: Phoenix) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=phoenix.url,  # the exporter appends /v1/traces
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_RESOURCE_ATTRIBUTES=f"openinference.project.name={PROJECT}",
        OTEL_METRICS_EXPORTER="none",  # Phoenix accepts traces only
        OTEL_LOGS_EXPORTER="none",
        PYTHONIOENCODING="utf-8",
        NO_COLOR="1",
    )
    cmd = [sys.executable, "-m", "graphai", "--runs", "3", "--concurrency", "2", "--speed", "4",
           "--prometheus-addr", "127.0.0.1:0"]
    log("running: " + " ".join(cmd[1:]))
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=DEMO_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"demo exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    if "did not finish" in proc.stdout:
        raise RuntimeError(f"OTLP export to Phoenix did not finish:\n{proc.stdout}\n{proc.stderr}")
    ids = re.findall(r"^  ([0-9a-f]{32})$", proc.stdout, re.M)
    if len(ids) != 3:
        raise RuntimeError(f"expected 3 trace ids in the demo output:\n{proc.stdout}")
    return ids


# -- 4. read back --------------------------------------------------------------------------------
def read_spans(phoenix: Phoenix, trace_ids: list[str]) -> list[dict[str, Any]]:
    url = f"{phoenix.url}/v1/projects/{urllib.parse.quote(PROJECT)}/spans?limit=1000"
    deadline = time.monotonic() + READBACK_TIMEOUT
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            spans = list(get_json(url)["data"])
        except (OSError, urllib.error.URLError, KeyError, ValueError):
            spans = []
        roots = {s["context"]["trace_id"] for s in spans if s["name"] == GRAPH_RUN_SPAN}
        if set(trace_ids) <= roots:
            return spans
        time.sleep(0.5)
    raise TimeoutError(f"Phoenix did not return the 3 runs within {READBACK_TIMEOUT}s: {len(spans)} spans")


def check_tree(spans: list[dict[str, Any]], trace_ids: list[str]) -> dict[str, Any]:
    """Run span -> node spans, per trace; returns a summary, raises AssertionError on a bad tree."""
    summary: dict[str, Any] = {}
    for tid in trace_ids:
        mine = [s for s in spans if s["context"]["trace_id"] == tid]
        roots = [s for s in mine if s["name"] == GRAPH_RUN_SPAN]
        assert len(roots) == 1, f"{tid}: {len(roots)} run spans"
        root = roots[0]
        assert not root.get("parent_id"), f"{tid}: the run span has a parent"
        root_id = root["context"]["span_id"]
        children = [s for s in mine if s is not root]
        orphans = [s["name"] for s in children if s.get("parent_id") != root_id]
        assert not orphans, f"{tid}: spans not under the run span: {orphans}"
        names = {s["name"] for s in children}
        assert ALWAYS <= names, f"{tid}: missing {ALWAYS - names}"
        assert names - ALWAYS in (set(), TOOLS), f"{tid}: unexpected {names - ALWAYS}"
        attrs = root.get("attributes", {})
        assert attrs.get("graphai.run.outcome") == "ok", f"{tid}: {attrs}"
        llm = next(s for s in children if s["name"] == "chat sim-llm-large")
        assert llm["attributes"].get("graphai.node.output.tokens", 0) > 10, llm["attributes"]
        summary[tid] = sorted(names)
    return summary


# -- 5. screenshot -------------------------------------------------------------------------------
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() != 0:
        raise RuntimeError("chromium not found; install it (apt-get install chromium) or pass --no-screenshot")
    log("installing Debian chromium (apt-get)")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(cmd, env=env, timeout=600, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, timeout=600, capture_output=True, check=True)
        subprocess.run(cmd, env=env, timeout=600, capture_output=True, check=True)
    path = shutil.which("chromium")
    if not path:
        raise RuntimeError("apt-get installed chromium but it is not on PATH")
    return path


def screenshot(phoenix: Phoenix, trace_id: str, out: Path, workdir: Path) -> None:
    projects = get_json(f"{phoenix.url}/v1/projects")["data"]
    project_id = next(p["id"] for p in projects if p["name"] == PROJECT)
    url = f"{phoenix.url}/projects/{project_id}/traces/{trace_id}"
    binary = chromium()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = workdir / "shot.png"
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'chromium-profile'}",
           f"--screenshot={tmp}", url]
    log(f"screenshot of {url}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SCREENSHOT_TIMEOUT)
    if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size < 10_000:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    shutil.copyfile(tmp, out)


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "img" / "phoenix-trace.png",
                   help="where to write the trace screenshot (default docs/img/phoenix-trace.png)")
    p.add_argument("--no-screenshot", action="store_true", help="skip the Chromium screenshot")
    p.add_argument("--keep", action="store_true", help="keep Phoenix's working directory")
    args = p.parse_args(argv)

    result: dict[str, Any] = {"ok": False}
    t_start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="graphai-phoenix-"))
    phoenix = None
    try:
        binary = ensure_phoenix()
        phoenix = Phoenix(binary, workdir)
        ready = phoenix.wait_ready()
        log(f"phoenix ready at {phoenix.url} after {ready:.1f}s (gRPC receiver unused)")
        result["phoenix_ready_s"] = round(ready, 1)
        t0 = time.monotonic()
        ids = run_demo(phoenix)
        result["demo_s"] = round(time.monotonic() - t0, 1)
        spans = read_spans(phoenix, ids)
        result["traces"] = check_tree(spans, ids)
        result["spans"] = len(spans)
        log(f"span tree ok: {len(ids)} runs, {len(spans)} spans in project {PROJECT}")
        if not args.no_screenshot:
            screenshot(phoenix, ids[0], args.screenshot, workdir)
            result["screenshot"] = str(args.screenshot)
            log(f"wrote {args.screenshot}")
        result["ok"] = True
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        if phoenix is not None and phoenix.log_path.exists():
            tail = phoenix.log_path.read_text(errors="replace")[-3000:]
            log("phoenix log (tail):\n" + tail)
    finally:
        if phoenix is not None:
            phoenix.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            result["workdir"] = str(workdir)
        result["total_s"] = round(time.monotonic() - t_start, 1)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
