"""
The demo stack: docker-compose.otel.yml is valid for Docker Compose v2 (its real binary),
Prometheus and Alertmanager configs pass promtool / amtool, and the files agree with each other
(ports, mounts, datasource and dashboard paths). The Collector config and the images cannot be
run here; see docs/operations.md, "What was and was not exercised".
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests._tools import require_tool
from tests.integration.prom_fixtures import render_prometheus_config
from tests.ops._ops import (
    ALERTS,
    COMPOSE_FILE,
    DEPLOY,
    FAST_ALERTS,
    GRAFANA_JSON,
    REPO,
    compose_binary,
    promtool,
    run,
)

SERVICES = {"otel-collector", "jaeger", "prometheus", "alertmanager", "grafana"}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _compose_config(path: Path, tmp_path: Path) -> tuple[int, str]:
    docker_config = tmp_path / "docker-config"  # keep the binary away from ~/.docker
    docker_config.mkdir(exist_ok=True)
    proc = run(
        [compose_binary(), "-f", str(path), "config", "-q"],
        cwd=path.parent,
        env={"PATH": "/usr/bin:/bin", "DOCKER_CONFIG": str(docker_config), "HOME": str(tmp_path)},
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_compose_file_is_valid_for_docker_compose_v2(tmp_path: Path) -> None:
    rc, out = _compose_config(COMPOSE_FILE, tmp_path)
    assert rc == 0, out


def test_compose_binary_rejects_a_broken_copy(tmp_path: Path) -> None:
    """Negative control: the same check fails on a typo and on a dangling depends_on."""
    text = COMPOSE_FILE.read_text()
    typo = tmp_path / "typo.yml"
    typo.write_text(text.replace("    image: prom/prometheus", "    imagee: prom/prometheus", 1))
    rc, out = _compose_config(typo, tmp_path)
    assert rc != 0 and "imagee" in out, out

    dangling = tmp_path / "dangling.yml"
    dangling.write_text(text.replace("      - jaeger\n", "      - tempo\n", 1))
    rc, out = _compose_config(dangling, tmp_path)
    assert rc != 0 and "tempo" in out, out


def test_compose_pins_images_and_mounts_files_that_exist() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        image = svc["image"]
        _, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, f"{name}: pin {image}"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} is missing"
    assert "--config=/etc/jaeger/config.yaml" in services["jaeger"]["command"]  # Jaeger v2
    assert services["grafana"]["image"].endswith(":11.6.0"), "the dashboards target Grafana 11.6"


def test_compose_prometheus_sees_the_same_rule_files_as_the_repository() -> None:
    """The container mounts deploy/ and dashboards/alerts/ under one root, so the relative
    rule path in deploy/prometheus.yml resolves to the same file inside and outside."""
    svc = _compose()["services"]["prometheus"]
    mounts = dict(v.split(":")[:2] for v in svc["volumes"] if v.startswith("."))
    config_arg = next(a for a in svc["command"] if a.startswith("--config.file="))
    container_config = Path(config_arg.split("=", 1)[1])
    assert mounts["./deploy/prometheus.yml"] == str(container_config)
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (rule_file,) = config["rule_files"]
    in_repo = (DEPLOY / rule_file).resolve()
    assert in_repo == ALERTS
    in_container = Path(mounts["./dashboards/alerts"]) / ALERTS.name
    assert (container_config.parent / rule_file).resolve() == in_container


def test_prometheus_scrapes_the_app_and_the_collector_and_alerts_alertmanager() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    exporter_port = collector["exporters"]["prometheus"]["endpoint"].rpartition(":")[2]
    assert {"host.docker.internal:9464", f"otel-collector:{exporter_port}"} <= targets
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    extra_hosts = _compose()["services"]["prometheus"]["extra_hosts"]
    assert "host.docker.internal:host-gateway" in extra_hosts


def test_collector_sends_traces_to_jaeger_and_metrics_to_prometheus() -> None:
    c = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    assert set(c["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    pipelines = c["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["span_metrics", "otlp_grpc/jaeger"]
    assert c["exporters"]["otlp_grpc/jaeger"]["endpoint"] == "jaeger:4317"
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert pipelines["metrics"]["receivers"] == ["otlp", "span_metrics"]
    for p in pipelines.values():
        assert p["receivers"][0] == "otlp" and p["processors"][0] == "memory_limiter"


def test_deploy_prometheus_config_passes_promtool_with_the_real_rules() -> None:
    proc = run([promtool(), "check", "config", str(DEPLOY / "prometheus.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 1 rule files found" in proc.stdout
    assert f"Checking {ALERTS}\n  SUCCESS" in proc.stdout


def test_live_test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(render_prometheus_config(["127.0.0.1:9464"], [FAST_ALERTS], "127.0.0.1:9093"))
    proc = run([promtool(), "check", "config", str(config)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 1 rule files found" in proc.stdout


def test_alertmanager_config_passes_amtool_and_a_broken_copy_fails(tmp_path: Path) -> None:
    amtool = require_tool(
        "amtool", "apt-get install --no-install-recommends prometheus-alertmanager"
    )
    path = DEPLOY / "alertmanager.yml"
    proc = run([amtool, "check-config", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(path.read_text().replace("receiver: page", "receiver: pager", 1))
    proc = run([amtool, "check-config", str(broken)])
    assert proc.returncode != 0 and "pager" in proc.stdout + proc.stderr


def test_alertmanager_routes_each_severity_the_rules_use() -> None:
    am = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    routed = {m for r in am["route"]["routes"] for m in r["matchers"]}
    assert {'severity="critical"', 'severity="info"'} <= routed  # warning: the default route
    inhibit = am["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['alertname="GraphaiTTFTErrorBudgetFastBurn"']


def test_grafana_provisions_both_datasources_and_the_generated_dashboards() -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((prov / "datasources" / "graphai.yaml").read_text())["datasources"]
    by_type = {s["type"]: s for s in sources}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["prometheus"]["isDefault"] is True
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    (provider,) = yaml.safe_load((prov / "dashboards" / "graphai.yaml").read_text())["providers"]
    grafana = _compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./dashboards/grafana"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.rpartition("/")[2] in {p.name for p in GRAFANA_JSON}
