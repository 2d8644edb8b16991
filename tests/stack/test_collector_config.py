"""deploy/otel-collector.yaml against the real Collector built from deploy/collector-builder.yaml:
it validates, the compose stack mounts this very file, and the distribution has exactly the
components the file names (plus the span_metrics connector, built for later use)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.stack.conftest import (
    COLLECTOR_CONFIG,
    COMPOSE_FILE,
    ROOT,
    CollectorPorts,
    load_collector_config,
    local_collector_config,
)

VALIDATE_TIMEOUT_S = 60
# Collector v0.165 renamed the OTLP/gRPC exporter to `otlp_grpc`; `otlp` is its deprecated alias
# (the name the compose image, contrib 0.135.0, knows). The file keeps `otlp`.
DEPRECATED_ALIASES = {("exporters", "otlp"): "otlp_grpc"}
EXTRA_BUILT = {("connectors", "span_metrics")}


def _validate(otelcol: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(otelcol), "validate", f"--config={config}"],
        capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_S,
    )


def test_shipped_config_validates(otelcol_bin: Path) -> None:
    # the file uses no ${env:...}; the compose service sets no environment for it
    assert "${" not in COLLECTOR_CONFIG.read_text()
    r = _validate(otelcol_bin, COLLECTOR_CONFIG)
    assert r.returncode == 0, r.stdout + r.stderr


def test_local_variant_validates(otelcol_bin: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "local.yaml"
    cfg.write_text(yaml.safe_dump(local_collector_config(CollectorPorts.free(), "127.0.0.1:1")))
    r = _validate(otelcol_bin, cfg)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_mounts_this_config() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    svc = compose["services"]["otel-collector"]
    config_args = [a.split("=", 1)[1] for a in svc["command"] if a.startswith("--config=")]
    assert len(config_args) == 1, svc["command"]
    mounts = {}
    for vol in svc["volumes"]:
        src, dst, *_ = vol.split(":")
        mounts[dst] = (ROOT / src).resolve()
    assert mounts.get(config_args[0]) == COLLECTOR_CONFIG.resolve(), (config_args, mounts)
    # the traces exporter points at the compose service `jaeger`, on Jaeger's OTLP/gRPC port
    host, port = load_collector_config()["exporters"]["otlp/jaeger"]["endpoint"].split(":")
    assert host in compose["services"] and port == "4317"
    # the ports the compose file publishes are the ones the config listens on
    published = {p.split(":")[-1] for p in svc["ports"]}
    receivers = load_collector_config()["receivers"]["otlp"]["protocols"]
    assert published == {receivers[k]["endpoint"].split(":")[-1] for k in ("grpc", "http")}


def test_distribution_has_exactly_the_configured_components(otelcol_bin: Path) -> None:
    r = subprocess.run([str(otelcol_bin), "components"], capture_output=True, text=True,
                       timeout=VALIDATE_TIMEOUT_S, check=True)
    listed = yaml.safe_load(r.stdout)
    kinds = ("receivers", "processors", "exporters", "extensions", "connectors")
    built = {(k, c["name"]) for k in kinds for c in listed.get(k) or []}
    cfg = load_collector_config()
    named = {(k, DEPRECATED_ALIASES.get((k, n.split("/")[0]), n.split("/")[0]))
             for k in kinds for n in cfg.get(k) or {}}
    assert built - EXTRA_BUILT == named
    # every module at one core release and one contrib release
    versions = {c["module"].split()[1] for k in kinds for c in listed.get(k) or []}
    assert versions <= {"v0.165.0", "v0.165.1"}, versions
