#!/usr/bin/env bash
# A throwaway Prometheus for the demo and local runs: it scrapes `thrifty replay` (modelled
# latency, replayed rates) and the operator, so that RLWorkloads' spec.slo.latencyQuery has
# something to query, and, given the cluster's kubeconfig, every node's kubelet resource metrics
# (container_cpu_usage_seconds_total, container_memory_working_set_bytes), as a real cluster's
# Prometheus does, so that `thrifty trace export` has a cluster history to read.
#
#   hack/prometheus.sh up --replayer-port P --operator-port Q [--kubeconfig K] [--port N] [--dir DIR]
#       installs Debian's prometheus package if missing, starts Prometheus on 127.0.0.1:N
#       (default 19090) in the background with its config, data and log under DIR (default: a new
#       temp dir), waits until it is ready; the LAST stdout line is its URL
#   hack/prometheus.sh down --dir DIR
#       stops the Prometheus started with that DIR and removes DIR
#
# The default port is not 9090: where the package's own service runs (a systemd host), it has
# that one. Progress goes to stderr.
set -euo pipefail
shopt -s inherit_errexit

log() { echo "prometheus.sh: $*" >&2; }
usage() {
  echo "usage: $0 up --replayer-port P --operator-port Q [--kubeconfig K] [--port N] [--dir DIR] | down --dir DIR" >&2
  exit 2
}
port_arg() { [[ "$2" =~ ^[0-9]+$ ]] && (($2 > 0 && $2 < 65536)) || { log "$1 must be a port number, got '$2'"; exit 2; }; }

cmd=${1:-}
[[ -n "$cmd" ]] || usage
shift
REPLAYER_PORT="" OPERATOR_PORT="" PORT=19090 DIR="" KUBECONFIG_FILE=""
while (($#)); do
  case "$1" in
    --replayer-port) REPLAYER_PORT=${2:?--replayer-port needs a value}; shift 2 ;;
    --operator-port) OPERATOR_PORT=${2:?--operator-port needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --kubeconfig) KUBECONFIG_FILE=${2:?--kubeconfig needs a value}; shift 2 ;;
    --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
    *) usage ;;
  esac
done

ensure_installed() {
  command -v prometheus >/dev/null && return
  local t0
  t0=$(date +%s)
  log "installing Debian's prometheus package (apt-get)"
  if ((EUID != 0)); then log "prometheus is not installed and installing it needs root"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends prometheus >&2
  log "prometheus installed in $(($(date +%s) - t0)) s"
}

ready() { curl -fsS --max-time 2 "http://127.0.0.1:$PORT/-/ready" >/dev/null 2>&1; }

up() {
  [[ -n "$REPLAYER_PORT" && -n "$OPERATOR_PORT" ]] || usage
  port_arg --replayer-port "$REPLAYER_PORT"
  port_arg --operator-port "$OPERATOR_PORT"
  port_arg --port "$PORT"
  ensure_installed
  if ready; then log "something already answers on 127.0.0.1:$PORT: pick another --port"; exit 1; fi
  [[ -n "$DIR" ]] || DIR=$(mktemp -d -t thrifty-prometheus.XXXXXX)
  mkdir -p "$DIR/data"
  # 5 s scrapes: the replayer updates every 10 s and the operator's reconcile reads the latest.
  cat >"$DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
- job_name: thrifty-replay
  static_configs:
  - targets: ['127.0.0.1:$REPLAYER_PORT']
- job_name: thrifty-operator
  static_configs:
  - targets: ['127.0.0.1:$OPERATOR_PORT']
EOF
  if [[ -n "$KUBECONFIG_FILE" ]]; then
    [[ -f "$KUBECONFIG_FILE" ]] || { log "--kubeconfig $KUBECONFIG_FILE: no such file"; exit 2; }
    # One target per node at start-up, at the node's kubelet endpoint (first address and the
    # daemonEndpoints port): Debian's Prometheus is built without Kubernetes service discovery,
    # so nodes added later are not scraped. kwok's simulated kubelets serve one endpoint for all
    # nodes, with each node's /metrics/resource under /metrics/nodes/NAME/.
    local kubectl nodes
    kubectl="$("$(dirname "${BASH_SOURCE[0]}")/build.sh" | tail -n 1)/kubectl"
    nodes=$("$kubectl" --kubeconfig "$KUBECONFIG_FILE" get nodes -o \
      jsonpath='{range .items[*]}{.metadata.name} {.status.addresses[0].address} {.status.daemonEndpoints.kubeletEndpoint.Port}{"\n"}{end}')
    [[ -n "$nodes" ]] || { log "--kubeconfig $KUBECONFIG_FILE: the cluster has no nodes to scrape"; exit 1; }
    {
      echo "- job_name: kubelet-resource"
      echo "  scheme: https"
      echo "  tls_config: {insecure_skip_verify: true}"
      echo "  static_configs:"
      while read -r name address port; do
        echo "  - targets: ['$address:$port']"
        echo "    labels: {__metrics_path__: /metrics/nodes/$name/metrics/resource, node: $name}"
      done <<<"$nodes"
    } >>"$DIR/prometheus.yml"
  fi
  prometheus \
    --config.file="$DIR/prometheus.yml" \
    --storage.tsdb.path="$DIR/data" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$PORT" \
    >"$DIR/prometheus.log" 2>&1 &
  echo $! >"$DIR/prometheus.pid"
  local deadline=$(($(date +%s) + 60))
  until ready; do
    if ! kill -0 "$(cat "$DIR/prometheus.pid")" 2>/dev/null; then
      tail -n 20 "$DIR/prometheus.log" >&2
      log "prometheus exited (log above, in $DIR/prometheus.log)"
      exit 1
    fi
    (($(date +%s) < deadline)) || { log "prometheus not ready after 60 s (log: $DIR/prometheus.log)"; exit 1; }
    sleep 0.5
  done
  log "scraping 127.0.0.1:$REPLAYER_PORT (replayer), 127.0.0.1:$OPERATOR_PORT (operator)${KUBECONFIG_FILE:+ and the kubelets of $KUBECONFIG_FILE}; config, data and log in $DIR"
  echo "http://127.0.0.1:$PORT"
}

down() {
  [[ -n "$DIR" ]] || usage
  local pid
  if pid=$(cat "$DIR/prometheus.pid" 2>/dev/null) && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == prometheus ]]; then
    kill "$pid"
    # Let it close the TSDB before the directory goes.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$DIR"
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) usage ;;
esac
