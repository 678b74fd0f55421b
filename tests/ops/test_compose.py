"""docker/: static checks of the compose deployment (Docker itself cannot run in CI).

The compose file parses, bind mounts exist, services reach Kafka at the advertised listener, Prometheus scrapes the
metrics ports the services open, and every topic named under docker/ exists in topology.yaml.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
PROMETHEUS = DOCKER / "prometheus" / "prometheus.yml"


def compose():
    return yaml.safe_load(COMPOSE.read_text())


def services():
    return compose()["services"]


def flag(command, name):
    """Value following ``name`` in a list-form command, or None."""
    if isinstance(command, str):
        command = command.split()
    command = [str(part) for part in command or []]
    return command[command.index(name) + 1] if name in command else None


def topology_topics():
    return set(yaml.safe_load((ROOT / "topology.yaml").read_text())["topics"])


def test_compose_parses_and_has_the_services():
    assert {"kafka", "topology", "worker", "actuator", "simulator", "prometheus", "grafana"} <= set(services())


def test_kafka_is_apache_kafka_4_in_kraft_mode():
    kafka = services()["kafka"]
    image = kafka["image"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", image), image
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]


def test_bind_mounts_exist_in_the_repo():
    checked = 0
    for name, service in services().items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                if volume.get("type") != "bind":
                    continue
                source = volume["source"]
            else:
                source = volume.split(":")[0]
                if not source.startswith((".", "/")):
                    continue  # named volume
            path = (DOCKER / source).resolve()
            assert path.exists(), f"service {name} mounts {source}, which does not exist ({path})"
            checked += 1
    assert checked >= 4


def test_build_context_holds_the_dockerfile():
    for name, service in services().items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
            assert (context / "pyproject.toml").is_file(), name


def test_dockerfile():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r'^ENTRYPOINT \["riskstream"\]', text, re.M)
    assert "pip install ." in text


def test_services_use_the_advertised_kafka_listener():
    env = services()["kafka"]["environment"]
    advertised = {entry.split("://", 1)[1] for entry in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    listener_ports = {entry.rsplit(":", 1)[1] for entry in env["KAFKA_LISTENERS"].split(",")}
    used = 0
    for name, service in services().items():
        bootstrap = flag(service.get("command"), "--bootstrap")
        if bootstrap is None:
            continue
        used += 1
        assert bootstrap in advertised, f"{name} uses {bootstrap}; advertised listeners are {sorted(advertised)}"
        assert bootstrap.rsplit(":", 1)[1] in listener_ports
        host = bootstrap.split(":")[0]
        assert host in services() or host == services()["kafka"].get("hostname"), name
    assert used >= 4
    # the port published to the host is an advertised one too
    published = {str(port).split(":")[-1] for port in services()["kafka"].get("ports", [])}
    assert published <= {address.rsplit(":", 1)[1] for address in advertised}


def test_worker_is_scalable():
    worker = services()["worker"]
    assert worker["deploy"]["replicas"] >= 1
    # a fixed container name or host port would make a second replica fail to start
    assert "container_name" not in worker and "ports" not in worker


def scrape_targets():
    """(service, port) pairs Prometheus scrapes, from static and DNS service-discovery configs."""
    targets = set()
    for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            for name in dns["names"]:
                targets.add((name, int(dns["port"])))
    return targets


def test_metrics_ports_agree_with_prometheus_targets():
    opened = {
        (name, int(flag(service.get("command"), "--metrics-port")))
        for name, service in services().items()
        if flag(service.get("command"), "--metrics-port")
    }
    assert {("worker", 9100), ("actuator", 9101)} <= opened
    assert scrape_targets() == opened, "prometheus.yml must scrape exactly the metrics ports the services open"


def test_scalable_worker_is_discovered_by_dns():
    jobs = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    dns_names = {name for job in jobs for dns in job.get("dns_sd_configs", []) for name in dns["names"]}
    assert "worker" in dns_names


def test_prometheus_mounts_the_files_its_config_names():
    mounts = {}
    for volume in services()["prometheus"]["volumes"]:
        parts = volume.split(":")
        if parts[0].startswith("."):
            mounts[parts[1]] = (DOCKER / parts[0]).resolve()
    config_path = flag(services()["prometheus"]["command"], "--config.file") or next(
        part.split("=", 1)[1] for part in services()["prometheus"]["command"] if part.startswith("--config.file=")
    )
    assert mounts[config_path] == PROMETHEUS.resolve()
    for rule_file in yaml.safe_load(PROMETHEUS.read_text())["rule_files"]:
        assert rule_file in mounts, f"rule file {rule_file} is not mounted into the prometheus container"
        assert mounts[rule_file].is_file()


def test_prometheus_config_is_valid(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed; .ci/run installs Debian's prometheus package")
    config = yaml.safe_load(PROMETHEUS.read_text())
    # container paths -> repository paths, so promtool can open the rule files
    config["rule_files"] = [str(DOCKER / "prometheus" / Path(path).name) for path in config["rule_files"]]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    run = subprocess.run([promtool, "check", "config", str(local)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_grafana_provisioning_points_at_the_mounted_dashboards():
    grafana = services()["grafana"]
    mounts = {v.split(":")[1]: (DOCKER / v.split(":")[0]).resolve() for v in grafana["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards" / "riskstream.yml").read_text())["providers"]
    for provider in providers:
        assert provider["options"]["path"] in mounts
        assert list(mounts[provider["options"]["path"]].glob("*.json"))
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert any(ds["url"] == "http://prometheus:9090" for ds in datasources)
    # the dashboard refers to the provisioned datasource uid
    uids = {ds["uid"] for ds in datasources}
    dashboard = (mounts["/var/lib/grafana/dashboards"] / "riskstream.json").read_text()
    assert set(re.findall(r'"uid":\s*"([^"]+)"', dashboard)) - {"riskstream"} <= uids


TOPIC_PATTERN = re.compile(r"\briskstream(?:\.[a-z][a-z0-9_]*)+|\briskstream-[a-z0-9-]+-changelog\b")
FILE_SUFFIXES = (".yml", ".yaml", ".json", ".md", ".env", ".py")


def test_every_topic_named_under_docker_exists_in_topology():
    known = topology_topics()
    named = {}
    for path in [COMPOSE, *DOCKER.rglob("*.yml"), *DOCKER.rglob("*.json")]:
        for token in TOPIC_PATTERN.findall(path.read_text()):
            token = token.rstrip(".")
            if token.endswith(FILE_SUFFIXES):
                continue
            named.setdefault(token, path.relative_to(ROOT))
    unknown = {token: str(where) for token, where in named.items() if token not in known}
    assert unknown == {}, "topics named under docker/ but missing from topology.yaml"
    assert len(named) >= 5
