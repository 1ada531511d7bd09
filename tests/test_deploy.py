"""The Kubernetes manifests: valid YAML, shards wired consistently, rules up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from exporter.cli import parse_shard
from exporter.config import parse_config
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"


def load(name: str) -> dict[str, object]:
    document = yaml.safe_load((DEPLOY / name).read_text())
    assert isinstance(document, dict)
    return document


def test_every_manifest_is_a_kubernetes_object() -> None:
    kustomization = load("kustomization.yaml")
    for name in kustomization["resources"]:  # type: ignore[attr-defined]
        document = load(name)
        assert {"apiVersion", "kind", "metadata"} <= set(document), name


def test_the_statefulset_shard_count_matches_its_replicas() -> None:
    spec = load("statefulset.yaml")["spec"]
    container = spec["template"]["spec"]["containers"][0]  # type: ignore[index]
    args = dict(arg.lstrip("-").split("=", 1) for arg in container["args"])
    assert args["shard.index"] == "$(POD_NAME)"
    assert int(args["shard.count"]) == spec["replicas"]  # type: ignore[index]
    # The pod names a StatefulSet gives pick shards 0 … replicas-1.
    for ordinal in range(spec["replicas"]):  # type: ignore[index]
        assert parse_shard(f"greenapi-exporter-{ordinal}", args["shard.count"]) == (
            ordinal,
            spec["replicas"],
        )  # type: ignore[index]


def test_the_configmaps_configuration_is_valid(tmp_path: Path) -> None:
    text = load("configmap.yaml")["data"]["config.yaml"]  # type: ignore[index]
    document = yaml.safe_load(text)
    for instance in document["instances"]:
        token = tmp_path / instance["name"]
        token.write_text("0123456789abcdef" * 3 + "\n")
        instance["api_token_file"] = str(token)
    config = parse_config(document, "configmap.yaml", {})
    assert config.state_file == "/var/lib/greenapi-exporter/state.json"


def test_the_prometheus_rule_is_generated_from_the_alert_rules() -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "make_rule.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    rule = load("prometheusrule.yaml")
    alerts = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"] == {"groups": alerts["groups"]}
