"""Write the PrometheusRule of the prometheus-operator component from prometheus/alerts.yml.

    python deploy/kubernetes/make_rule.py          # rewrite it
    python deploy/kubernetes/make_rule.py --check  # exit 1 if it is out of date (the tests run this)

The rule carries alerts.yml's groups unchanged, so that the Operator's Prometheus evaluates what
promtool tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent.parent / "prometheus" / "alerts.yml"
TARGET = HERE / "components" / "prometheus-operator" / "prometheusrule.yaml"


def render() -> str:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "greenapi-exporter",
            "labels": {"app.kubernetes.io/name": "greenapi-exporter"},
        },
        "spec": {"groups": groups},
    }
    header = (
        "# Generated from prometheus/alerts.yml by deploy/kubernetes/make_rule.py: edit that file,\n"
        "# not this one. The `release` label is added by kustomization.yaml beside this file.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(
                "prometheusrule.yaml is out of date: python deploy/kubernetes/make_rule.py",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
