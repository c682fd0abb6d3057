#!/usr/bin/env bash
# Refreshes the chart's copies of files that live elsewhere in the repository: Helm reads nothing
# outside a chart's directory (.Files, crds/), so charts/thrifty/ carries copies of
#   crds/*.yaml                                -> charts/thrifty/crds/
#   manifests/grafana/thrifty.json             -> charts/thrifty/files/thrifty.json
#   manifests/monitoring/prometheusrule.yaml   -> charts/thrifty/files/prometheusrule.yaml
#   manifests/scheduler-config.yaml            -> charts/thrifty/files/scheduler-config.yaml
# Run it after changing any of those; tests/unit/test_chart.py fails while a copy differs.
set -euo pipefail
cd "$(dirname "$0")/.."

chart=charts/thrifty
rm -f "$chart"/crds/*.yaml
cp crds/*.yaml "$chart/crds/"
cp manifests/grafana/thrifty.json "$chart/files/thrifty.json"
cp manifests/monitoring/prometheusrule.yaml "$chart/files/prometheusrule.yaml"
cp manifests/scheduler-config.yaml "$chart/files/scheduler-config.yaml"
