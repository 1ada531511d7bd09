"""The Kubernetes manifests, read as kustomize reads them: every object valid, the image named
once, the generated token Secret matching the mount and the configuration, the Prometheus
Operator's objects in an optional component, shards wired consistently, rules up to date."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import exporter
from exporter.cli import parse_shard
from exporter.config import parse_config
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
OPERATOR = DEPLOY / "components" / "prometheus-operator"
OPERATOR_GROUP = "monitoring.coreos.com"


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    return document


def kustomization(directory: Path = DEPLOY) -> dict[str, Any]:
    return load(directory / "kustomization.yaml")


def resources(directory: Path) -> list[dict[str, Any]]:
    return [load(directory / name) for name in kustomization(directory)["resources"]]


def every_object() -> list[dict[str, Any]]:
    return resources(DEPLOY) + resources(OPERATOR)


def find(kind: str) -> dict[str, Any]:
    [document] = [d for d in every_object() if d["kind"] == kind]
    return document


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = find("StatefulSet")["spec"]["template"]["spec"]
    return spec


def containers() -> Iterator[dict[str, Any]]:
    for document in every_object():
        template = document.get("spec", {}).get("template", {}).get("spec", {})
        yield from template.get("containers", [])
        yield from template.get("initContainers", [])


def group_of(document: dict[str, Any]) -> str:
    api_version: str = document["apiVersion"]
    return api_version.rpartition("/")[0]


def test_every_resource_and_component_is_a_kubernetes_object() -> None:
    assert kustomization()["kind"] == "Kustomization"
    assert kustomization(OPERATOR)["kind"] == "Component"
    for document in every_object():
        assert {"apiVersion", "kind", "metadata"} <= set(document), document
        assert document["metadata"]["name"] == "greenapi-exporter", document["kind"]
        assert document["metadata"]["labels"]["app.kubernetes.io/name"] == "greenapi-exporter"


def test_the_default_kustomization_needs_no_prometheus_operator() -> None:
    """`kubectl apply -k deploy/kubernetes` works on a cluster without the Operator's CRDs."""
    assert "components" not in kustomization()
    assert all(group_of(d) != OPERATOR_GROUP for d in resources(DEPLOY))


def test_the_operator_component_holds_exactly_the_operator_objects() -> None:
    objects = resources(OPERATOR)
    assert sorted(d["kind"] for d in objects) == ["PrometheusRule", "ServiceMonitor"]
    assert {d["apiVersion"] for d in objects} == {f"{OPERATOR_GROUP}/v1"}
    # The component's directory is the path the kustomization's comment tells to enable.
    assert "#   - components/prometheus-operator" in (DEPLOY / "kustomization.yaml").read_text()


def test_the_operator_component_sets_the_release_label_of_kube_prometheus_stack() -> None:
    [patch] = kustomization(OPERATOR)["patches"]
    assert patch["target"] == {"group": OPERATOR_GROUP}  # both objects, nothing else
    [operation] = yaml.safe_load(patch["patch"])
    assert operation["op"] == "add" and operation["path"] == "/metadata/labels/release"
    assert operation["value"] == "kube-prometheus-stack"
    # A JSON patch adds a key only to a map that exists.
    assert all(isinstance(d["metadata"]["labels"], dict) for d in resources(OPERATOR))


def test_the_image_is_named_in_one_place() -> None:
    [image] = kustomization()["images"]
    assert [c["image"] for c in containers()] == [image["name"]]
    assert "/" in image["newName"]  # a registry of the user's, not a name that Docker Hub has
    assert image["newTag"] == exporter.__version__


def test_the_token_secret_is_generated_for_the_mount_and_the_configuration() -> None:
    [generator] = kustomization()["secretGenerator"]
    files = dict(entry.split("=", 1) for entry in generator["files"])
    [volume] = [v for v in pod_spec()["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == generator["name"]
    [container] = pod_spec()["containers"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    configuration = yaml.safe_load(find("ConfigMap")["data"]["config.yaml"])
    token_files = [Path(i["api_token_file"]) for i in configuration["instances"]]
    assert {str(path.parent) for path in token_files} == {mount["mountPath"]}
    assert sorted(files) == sorted(path.name for path in token_files)


@pytest.mark.process
def test_the_token_files_stay_out_of_git() -> None:
    [generator] = kustomization()["secretGenerator"]
    for entry in generator["files"]:
        path = DEPLOY / entry.split("=", 1)[1]
        assert path.parent == DEPLOY / "tokens"
        ignored = subprocess.run(
            ["git", "check-ignore", "--quiet", "--no-index", str(path.relative_to(ROOT))],
            cwd=ROOT,
        )
        assert ignored.returncode == 0, f"git would commit {path}"


def test_the_pods_run_as_the_images_user_and_group() -> None:
    [user] = re.findall(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    context = pod_spec()["securityContext"]
    assert (str(context["runAsUser"]), str(context["runAsGroup"])) == user
    assert str(context["fsGroup"]) == user[1]  # the token files and the state volume's group
    [volume] = [v for v in pod_spec()["volumes"] if "secret" in v]
    assert volume["secret"]["defaultMode"] == 0o440  # read by that group, no one else


def test_the_statefulset_shard_count_matches_its_replicas() -> None:
    spec = find("StatefulSet")["spec"]
    [container] = pod_spec()["containers"]
    args = dict(arg.lstrip("-").split("=", 1) for arg in container["args"])
    assert args["shard.index"] == "$(POD_NAME)"
    assert int(args["shard.count"]) == spec["replicas"]
    # The pod names a StatefulSet gives pick shards 0 … replicas-1.
    for ordinal in range(spec["replicas"]):
        assert parse_shard(f"greenapi-exporter-{ordinal}", args["shard.count"]) == (
            ordinal,
            spec["replicas"],
        )


def test_the_configmaps_configuration_is_valid(tmp_path: Path) -> None:
    text = find("ConfigMap")["data"]["config.yaml"]
    document = yaml.safe_load(text)
    for instance in document["instances"]:
        token = tmp_path / instance["name"]
        token.write_text("0123456789abcdef" * 3 + "\n")
        instance["api_token_file"] = str(token)
    config = parse_config(document, "configmap.yaml", {})
    assert config.state_file == "/var/lib/greenapi-exporter/state.json"


@pytest.mark.process
def test_the_prometheus_rule_is_generated_from_the_alert_rules() -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "make_rule.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    alerts = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    assert find("PrometheusRule")["spec"] == {"groups": alerts["groups"]}
