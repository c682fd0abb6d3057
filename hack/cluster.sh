#!/usr/bin/env bash
# Starts and stops a local Kubernetes cluster for the tests: a real etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and metrics-server (built by hack/build.sh), run as plain
# processes by kwokctl's binary runtime, plus N nodes simulated by kwok and sized from a real node
# inventory (hack/nodes/).
#
#   hack/cluster.sh up   --name NAME --nodes N   start (or reuse) NAME; the LAST stdout line is the
#                                                path of its kubeconfig
#   hack/cluster.sh down --name NAME             stop NAME and remove its state
#   hack/cluster.sh kubeconfig --name NAME       print the kubeconfig path of a running NAME
#
# Env: THRIFTY_CACHE (default ~/.cache/thrifty) holds binaries and cluster state (never the
# checkout); THRIFTY_CLUSTER_FRESH=1 re-creates a cluster that is already up;
# THRIFTY_NODES_CSV another node inventory of the same format; THRIFTY_CLUSTER_TIMEOUT seconds to
# wait for components and nodes (default 300); THRIFTY_CLUSTER_KEEP=1 leaves a cluster whose `up`
# failed running, to look at.
# Progress goes to stderr, so that stdout carries only the kubeconfig path.
set -euo pipefail
shopt -s inherit_errexit

HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${THRIFTY_CACHE:-$HOME/.cache/thrifty}
# kwokctl keeps each cluster (pki, etcd data, logs, pids, kubeconfig) under $KWOK_WORKDIR/clusters/.
export KWOK_WORKDIR="$CACHE/kwok"
TIMEOUT=${THRIFTY_CLUSTER_TIMEOUT:-300}

log() { echo "cluster.sh: $*" >&2; }
usage() {
  echo "usage: $0 up --name NAME [--nodes N] | down --name NAME | kubeconfig --name NAME" >&2
  exit 2
}

cmd=${1:-}
[[ -n "$cmd" ]] || usage
shift
NAME="" NODES=4
while (($#)); do
  case "$1" in
    --name) NAME=${2:?--name needs a value}; shift 2 ;;
    --name=*) NAME=${1#*=}; shift ;;
    --nodes) NODES=${2:?--nodes needs a value}; shift 2 ;;
    --nodes=*) NODES=${1#*=}; shift ;;
    *) usage ;;
  esac
done
[[ -n "$NAME" ]] || usage
[[ "$NAME" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { log "bad cluster name '$NAME'"; exit 2; }
[[ "$NODES" =~ ^[0-9]+$ ]] || { log "--nodes must be a number, got '$NODES'"; exit 2; }

CLUSTER_DIR="$KWOK_WORKDIR/clusters/$NAME"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig.yaml"
# kwokctl logs JSON lines: kept out of the way, shown when something fails.
KWOKCTL_LOG="$KWOK_WORKDIR/kwokctl-$NAME.log"

# The binaries: build.sh is a no-op (well under a second) once they are built. Its progress goes to
# stderr; the bin dir is its last line.
setup_bin() {
  "$HACK/build.sh" >&2
  BIN=$("$HACK/build.sh" | tail -n 1)
  export PATH="$BIN:$PATH"
  K8S_VERSION=$("$BIN/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | head -n1)
}

# kwokctl's defaults point at GitHub and dl.k8s.io, which are out of reach: a config file gives it
# our kubectl and metrics-server's manifest as rendered by build.sh (list options cannot be set
# through KWOK_* variables). The component binaries are given as flags in create_cluster.
# bindAddress: every component listens on 127.0.0.1 only (kwokctl's default is 0.0.0.0).
# Stages: hack/kwok/stages.yaml, kwok's defaults plus what in-place pod resize needs.
write_kwokctl_config() {
  KWOKCTL_CONFIG="$KWOK_WORKDIR/kwokctl-$NAME.yaml"
  mkdir -p "$KWOK_WORKDIR"
  cat >"$KWOKCTL_CONFIG" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
  kubeVersion: $K8S_VERSION
  kubectlBinary: $BIN/kubectl
  metricsServerManifests:
  - $BIN/manifests/metrics-server
EOF
  # kwok's default node and pod stages, plus in-place resize support (see the file).
  # hack/kwok/kwokctl.yaml: metrics-server's scrape interval (10 s), so replayed usage shows sooner.
  cat "$HACK/kwok/kwokctl.yaml" "$HACK/kwok/stages.yaml" >>"$KWOKCTL_CONFIG"
}

k() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# Prints the tail of every component log, to say why something did not come up.
dump_logs() {
  local f
  for f in "$CLUSTER_DIR"/logs/*.log; do
    [[ -f "$f" ]] || continue
    echo "----- $(basename "$f") (last 25 lines) -----" >&2
    tail -n 25 "$f" >&2
  done
}
# A failed `up` says why, shows the logs, then stops the cluster so that no half-started
# processes linger (THRIFTY_CLUSTER_KEEP=1 leaves it running, to poke at).
fail() {
  log "ERROR: $*"
  [[ -f "$KWOKCTL_LOG" ]] && { echo "----- kwokctl (last 15 lines) -----" >&2; tail -n 15 "$KWOKCTL_LOG" >&2; }
  dump_logs
  if [[ -z "${THRIFTY_CLUSTER_KEEP:-}" ]]; then
    delete_cluster
    log "ERROR: $* (cluster '$NAME' torn down; THRIFTY_CLUSTER_KEEP=1 keeps it)"
  else
    log "ERROR: $* (cluster '$NAME' kept in $CLUSTER_DIR)"
  fi
  exit 1
}

# ours PIDFILE: the pid in PIDFILE is alive and runs one of this cluster's binaries (kwokctl starts
# them as $CLUSTER_DIR/bin/NAME), so a pid reused by something else never counts.
ours() {
  local pid argv0
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  argv0=$({ tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | head -n 1) || return 1
  [[ "$argv0" == "$CLUSTER_DIR/bin/"* ]]
}

delete_cluster() {
  local pidfile
  if [[ -d "$CLUSTER_DIR" ]]; then
    # kwokctl stops the processes by their pid files. --kubeconfig: the context to remove lives
    # in the cluster's own kubeconfig, never in the user's ~/.kube/config.
    if ! kwokctl delete cluster --name "$NAME" --kubeconfig "$KUBECONFIG_PATH" >>"$KWOKCTL_LOG" 2>&1; then
      log "kwokctl delete failed (see $KWOKCTL_LOG); stopping the processes of its pid files"
      for pidfile in "$CLUSTER_DIR"/pids/*.pid; do
        if ours "$pidfile"; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
      done
    fi
    rm -rf "$CLUSTER_DIR"
  fi
}

# Healthy: every component kwokctl started is still running (its pid file names a live process)
# and the API server says it is ready.
healthy() {
  local pidfile n=0
  [[ -f "$KUBECONFIG_PATH" ]] || return 1
  for pidfile in "$CLUSTER_DIR"/pids/*.pid; do
    ours "$pidfile" || return 1
    n=$((n + 1))
  done
  ((n >= 6)) || return 1 # etcd, apiserver, controller-manager, scheduler, kwok, metrics-server
  # A cluster created before the audit policy was added has no audit log: re-created.
  [[ -f "$CLUSTER_DIR/logs/audit.log" ]] || return 1
  k --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

create_cluster() {
  mkdir -p "$KWOK_WORKDIR"
  log "creating cluster '$NAME' (Kubernetes $K8S_VERSION, binaries from $BIN)"
  # Every binary is given explicitly: kwokctl's defaults are GitHub/dl.k8s.io downloads.
  # --disable-qps-limits: kwok-controller, scheduler and controller-manager must keep up with
  # 1000 nodes' heartbeats and a burst of pods. Ports are picked free by kwokctl, on 127.0.0.1.
  # --enable-crds: simulated usage (what metrics-server reports) is set through kwok's
  # ResourceUsage/ClusterResourceUsage objects in the API, so tests can change it at run time.
  # --kube-audit-policy: the API server's audit log ($CLUSTER_DIR/logs/audit.log) of the writes
  # the operator makes, nothing else (hack/kwok/audit-policy.yaml); the leadership tests read
  # which replica wrote from it.
  write_kwokctl_config
  # From the work dir: kwokctl runs `metrics-server version`, which writes self-signed certificates
  # into its working directory (apiserver.local.config/), and that must not be the checkout.
  if ! (cd "$KWOK_WORKDIR" && kwokctl create cluster \
    --config "$KWOKCTL_CONFIG" \
    --name "$NAME" \
    --runtime binary \
    --kubeconfig '' \
    --etcd-binary "$BIN/etcd" \
    --kube-apiserver-binary "$BIN/kube-apiserver" \
    --kube-controller-manager-binary "$BIN/kube-controller-manager" \
    --kube-scheduler-binary "$BIN/kube-scheduler" \
    --kwok-controller-binary "$BIN/kwok" \
    --metrics-server-binary "$BIN/metrics-server" \
    --enable metrics-server \
    --disable-qps-limits \
    --enable-crds ResourceUsage,ClusterResourceUsage \
    --kube-audit-policy "$HACK/kwok/audit-policy.yaml" \
    --wait "${TIMEOUT}s" >"$KWOKCTL_LOG" 2>&1 8>&-); then
    fail "kwokctl create cluster failed"
  fi
  [[ -f "$KUBECONFIG_PATH" ]] || fail "kwokctl wrote no kubeconfig at $KUBECONFIG_PATH"
  k apply -f "$HACK/kwok/usage-from-annotation.yaml" >/dev/null || fail "applying the default ClusterResourceUsage failed"
}

# Creates the missing ones of node-0000 .. node-(N-1), removes the extra ones a reused cluster may
# have from an earlier, larger run, and waits until all N are Ready.
# Creation is a server-side apply of a few Lists in parallel: one kubectl sends its requests one
# by one under a client-side rate limit, ~40 s for 1000 nodes; 4 in parallel cut that to a quarter.
NODE_CHUNKS=4
ensure_nodes() {
  local t0 want have deadline extra tmp pids=() pid f rc=0
  t0=$(date +%s)
  want=$(for ((i = 0; i < NODES; i++)); do printf 'node-%04d\n' "$i"; done)
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" RETURN
  k get nodes -l type=kwok -o go-template='{{range .items}}{{.metadata.name}}{{"\n"}}{{end}}' >"$tmp/existing" ||
    fail "cannot list nodes"
  if ((NODES > 0)); then
    python3 "$HACK/nodes/gen_nodes.py" "$NODES" --skip "$tmp/existing" --chunks "$NODE_CHUNKS" --outdir "$tmp/new" ||
      fail "generating $NODES nodes failed"
    for f in "$tmp"/new/nodes-*.json; do
      [[ -f "$f" ]] || continue
      k apply --server-side --force-conflicts --field-manager=thrifty-cluster -f "$f" >/dev/null &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
    ((rc == 0)) || fail "creating nodes failed (kubectl exit $rc)"
  fi
  extra=$(grep -vxF -f <(echo "$want") "$tmp/existing" || true)
  if [[ -n "$extra" ]]; then
    log "deleting $(wc -l <<<"$extra") nodes left over from an earlier run"
    # shellcheck disable=SC2086
    k delete nodes --wait=false $extra >/dev/null
  fi
  deadline=$((t0 + TIMEOUT))
  while :; do
    # shellcheck disable=SC2016 # $n is a go-template variable
    have=$(k get nodes -l type=kwok -o go-template='{{range .items}}{{$n := .metadata.name}}{{range .status.conditions}}{{if and (eq .type "Ready") (eq .status "True")}}{{$n}}{{"\n"}}{{end}}{{end}}{{end}}' 2>/dev/null |
      grep -cxF -f <(echo "$want") || true)
    ((have >= NODES)) && break
    (($(date +%s) < deadline)) || fail "only $have of $NODES nodes Ready after ${TIMEOUT}s"
    sleep 1
  done
  log "$NODES nodes Ready ($(($(date +%s) - t0)) s)"
}

# kwokctl forks every component at once and does not wait for the API server first. The others
# retry, but metrics-server exits (a panic) when its first request is refused, and nothing starts it
# again. `kwokctl start cluster` starts only the components that are not running.
RESTARTS_MAX=5
restarts=0
revive_components() {
  local pidfile dead=()
  for pidfile in "$CLUSTER_DIR"/pids/*.pid; do
    ours "$pidfile" || dead+=("$(basename "$pidfile" .pid)")
  done
  ((${#dead[@]})) || return 0
  ((restarts < RESTARTS_MAX)) || fail "${dead[*]} exited again after $RESTARTS_MAX restarts"
  restarts=$((restarts + 1))
  log "${dead[*]} exited; starting it again ($restarts of $RESTARTS_MAX)"
  for pidfile in "${dead[@]}"; do
    [[ -f "$CLUSTER_DIR/logs/$pidfile.log" ]] && tail -n 3 "$CLUSTER_DIR/logs/$pidfile.log" >&2
  done
  (cd "$KWOK_WORKDIR" && kwokctl start cluster --name "$NAME") >>"$KWOKCTL_LOG" 2>&1 8>&- ||
    fail "kwokctl start cluster failed"
}

# metrics.k8s.io is served by metrics-server through the aggregator; it answers once metrics-server
# has registered and done a first scrape of kwok's simulated kubelets.
wait_metrics() {
  local deadline=$(($(date +%s) + TIMEOUT))
  until k --request-timeout=10s get --raw /apis/metrics.k8s.io/v1beta1/nodes >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || fail "metrics.k8s.io not served after ${TIMEOUT}s"
    revive_components
    sleep 2
  done
}

# The controller-manager creates the default ServiceAccount; pods are easier to create after it.
wait_default_sa() {
  local deadline=$(($(date +%s) + TIMEOUT))
  until k get serviceaccount default -n default >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || fail "no default ServiceAccount after ${TIMEOUT}s"
    sleep 1
  done
}

# One `up`/`down` of a given cluster at a time (parallel test workers may ask for the same one).
# The components kwokctl starts must not inherit fd 8, or they would hold the lock for their
# lifetime: create_cluster closes it for kwokctl.
lock_cluster() {
  mkdir -p "$KWOK_WORKDIR"
  exec 8>"$KWOK_WORKDIR/cluster-$NAME.lock"
  if command -v flock >/dev/null; then flock 8; fi
}

case "$cmd" in
  up)
    start=$(date +%s)
    setup_bin
    lock_cluster
    if [[ -d "$CLUSTER_DIR" && -n "${THRIFTY_CLUSTER_FRESH:-}" ]]; then
      log "THRIFTY_CLUSTER_FRESH set: re-creating '$NAME'"
      delete_cluster
    fi
    if [[ -d "$CLUSTER_DIR" ]] && healthy; then
      log "reusing running cluster '$NAME'"
    else
      if [[ -d "$CLUSTER_DIR" ]]; then
        log "cluster '$NAME' exists but is not healthy: re-creating it"
        delete_cluster
      fi
      create_cluster
    fi
    ensure_nodes
    wait_default_sa
    wait_metrics
    log "cluster '$NAME' up with $NODES nodes Ready in $(($(date +%s) - start)) s"
    echo "$KUBECONFIG_PATH"
    ;;
  down)
    if [[ -d "$CLUSTER_DIR" ]]; then
      setup_bin
      lock_cluster
      delete_cluster
      log "cluster '$NAME' deleted"
    else
      log "no cluster '$NAME'"
    fi
    ;;
  kubeconfig)
    setup_bin
    healthy || { log "cluster '$NAME' is not running"; exit 1; }
    echo "$KUBECONFIG_PATH"
    ;;
  *) usage ;;
esac
