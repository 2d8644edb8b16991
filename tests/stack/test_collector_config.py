"""deploy/otel-collector.yaml against the real Collector built from deploy/collector-builder.yaml:
it validates, the compose stack mounts this very file (and deploy/jaeger.yaml for Jaeger), and
the distribution has exactly the components the file names, under their current names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.stack.conftest import (
    COLLECTOR_CONFIG,
    COMPOSE_FILE,
    JAEGER_CONFIG,
    ROOT,
    CollectorPorts,
    load_collector_config,
    load_jaeger_config,
    local_collector_config,
)

VALIDATE_TIMEOUT_S = 60


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


def _mounted_config(service: str) -> Path:
    """The file the compose service's ``--config=`` names, as a path in this repository."""
    svc = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]
    config_args = [a.split("=", 1)[1] for a in svc["command"] if a.startswith("--config=")]
    assert len(config_args) == 1, svc["command"]
    mounts = {}
    for vol in svc["volumes"]:
        src, dst, *_ = vol.split(":")
        mounts[dst] = (ROOT / src).resolve()
    assert config_args[0] in mounts, (config_args, mounts)
    return mounts[config_args[0]]


def test_compose_mounts_this_config() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    svc = compose["services"]["otel-collector"]
    assert _mounted_config("otel-collector") == COLLECTOR_CONFIG.resolve()
    assert _mounted_config("jaeger") == JAEGER_CONFIG.resolve()
    # the traces exporter points at the compose service `jaeger`, on the port Jaeger's config
    # receives OTLP/gRPC on
    host, port = load_collector_config()["exporters"]["otlp_grpc/jaeger"]["endpoint"].split(":")
    jaeger_grpc = load_jaeger_config()["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert host in compose["services"] and jaeger_grpc == f"0.0.0.0:{port}"
    # the Grafana Jaeger datasource and the published port are Jaeger's query port
    query = load_jaeger_config()["extensions"]["jaeger_query"]["http"]["endpoint"]
    assert {p.split(":")[-1] for p in compose["services"]["jaeger"]["ports"]} == {
        query.rpartition(":")[2]}  # fmt: skip
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
    named = {(k, n.split("/")[0]) for k in kinds for n in cfg.get(k) or {}}
    # exact equality: a deprecated alias in the file (`otlp`, `spanmetrics`) is not a built name
    assert built == named
    # every module at one core release and one contrib release
    versions = {c["module"].split()[1] for k in kinds for c in listed.get(k) or []}
    assert versions <= {"v0.165.0", "v0.165.1"}, versions
