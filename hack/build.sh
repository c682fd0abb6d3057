#!/usr/bin/env bash
# Builds the local control plane the cluster tests run on, from source, through the Go module
# proxy: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, kwokctl and
# metrics-server; and helm, which installs the chart in charts/. Nothing prebuilt is downloaded
# (only Go modules), so this works on a machine that has nothing but Go and the module proxy.
#
# The binaries go into a cache outside the checkout, keyed by the version set:
#   ${THRIFTY_CACHE:-$HOME/.cache/thrifty}/bin/k8s-<v>_etcd-<v>_kwok-<v>_ms-<v>/
# helm into a directory keyed by its own version, so that adding or bumping it never changes the
# key above (those binaries take 10+ minutes to build); the control plane's directory links to it:
#   ${THRIFTY_CACHE:-$HOME/.cache/thrifty}/bin/helm-<v>/helm   <-   .../k8s-..._ms-<v>/helm
# Each directory has a stamp file (written last): a second run finds them and returns at once.
#
# Usage: hack/build.sh            build if needed; the LAST line of output is the bin dir (helm too)
#        hack/build.sh helm       helm alone; the LAST line of output is helm's dir
#        THRIFTY_REBUILD=1 hack/build.sh [helm]   rebuild every binary (of that set)
set -euo pipefail
shopt -s inherit_errexit

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.9.0}
HELM_VERSION=${HELM_VERSION:-v4.3.2}

WHAT=${1:-all}
[[ "$WHAT" == all || "$WHAT" == helm ]] || { echo "usage: $0 [helm]" >&2; exit 2; }

CACHE=${THRIFTY_CACHE:-$HOME/.cache/thrifty}
KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_ms-${METRICS_SERVER_VERSION}"
BIN_DIR="$CACHE/bin/$KEY"
STAMP="$BIN_DIR/.complete"
# metrics-server's own release manifest (RBAC, Service, APIService), rendered from its module:
# kwokctl would otherwise fetch it from GitHub, which is out of reach.
MS_MANIFEST="$BIN_DIR/manifests/metrics-server"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl metrics-server)
HELM_DIR="$CACHE/bin/helm-$HELM_VERSION"
HELM_STAMP="$HELM_DIR/.complete"

# Fast path: everything for this version set is there (the stamp is written after the last binary).
complete() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
  [[ -s "$MS_MANIFEST/components.yaml" ]]
}
helm_complete() { [[ -f "$HELM_STAMP" && "$(cat "$HELM_STAMP")" == "$HELM_VERSION" && -x "$HELM_DIR/helm" ]]; }
linked() { [[ "$(readlink "$BIN_DIR/helm")" == "$HELM_DIR/helm" ]]; }
if [[ -z "${THRIFTY_REBUILD:-}" ]]; then
  if [[ "$WHAT" == helm ]] && helm_complete; then echo "$HELM_DIR"; exit 0; fi
  if [[ "$WHAT" == all ]] && complete && helm_complete && linked; then echo "$BIN_DIR"; exit 0; fi
fi

command -v go >/dev/null || { echo "build.sh: go is not on PATH (Go >= 1.26 needed)" >&2; exit 1; }
mkdir -p "$CACHE/src"

# GOTOOLCHAIN=local: etcd's go.mod names toolchain go1.26.10, which must not trigger a toolchain
# download. -mod=mod lets go fill in the wrapper modules' go.mod/go.sum. Static, stripped binaries.
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=mod ${GOFLAGS:-}"
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}

# json_field FIELD: first "FIELD": "value" of the `go mod download -json` output on stdin.
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" | head -n1; }

# wrapper_module NAME MODULE VERSION [STAGING_VERSION]
# The upstream modules are built as dependencies of a tiny generated module, because `go install
# pkg@version` refuses modules whose go.mod has replace directives (k8s.io/kubernetes maps its
# staging modules to ./staging/..., etcd maps its sibling modules to ../). The replace list is
# derived from the upstream go.mod, so it stays right when a version changes:
#   - a replace to a local path becomes a replace to the published module at the version upstream
#     requires, or STAGING_VERSION where upstream requires the v0.0.0 placeholder (Kubernetes:
#     k8s.io/api v0.0.0 => ./staging/src/k8s.io/api becomes k8s.io/api v0.37.2 for v1.37.2);
#     local replaces of modules upstream does not require (etcd's FORBIDDEN_DEPENDENCY) are dropped;
#   - any other replace is copied as is (replaces only apply in the main module).
# Prints the wrapper's directory.
wrapper_module() {
  local name=$1 mod=$2 ver=$3 staging=${4:-}
  local info gomod gover dir line left right old oldver new newver req
  info=$(go mod download -json "$mod@$ver") || { echo "build.sh: cannot download $mod@$ver" >&2; return 1; }
  gomod=$(json_field GoMod <<<"$info")
  [[ -f "$gomod" ]] || { echo "build.sh: no go.mod for $mod@$ver in: $info" >&2; return 1; }
  gover=$(awk '$1 == "go" { print $2; exit }' "$gomod")
  dir="$CACHE/src/$name-$ver"
  rm -rf "$dir" && mkdir -p "$dir"
  printf 'module thrifty.local/build/%s\n\ngo %s\n\nrequire %s %s\n' "$name" "$gover" "$mod" "$ver" >"$dir/go.mod"
  local -a edits=()
  while IFS= read -r line; do
    line=${line%%//*}
    line=$(sed -e 's/^[[:space:]]*replace[[:space:]]*//' -e 's/^(//' <<<"$line")
    left=${line%%=>*} right=${line#*=>}
    read -r old oldver _ <<<"$left" || true
    read -r new newver _ <<<"$right" || true
    [[ -n "$old" && -n "$new" ]] || continue
    case "$new" in
      ./* | ../* | /*)
        req=$(awk -v m="$old" '!/=>/ { sub(/^require[ \t]+/, "") } !/=>/ && $1 == m && $2 ~ /^v/ { print $2; exit }' "$gomod")
        [[ -n "$req" ]] || continue
        [[ "$req" == v0.0.0 && -n "$staging" ]] && req=$staging
        edits+=("-replace=$old=$old@$req") ;;
      *)
        edits+=("-replace=$old${oldver:+@$oldver}=$new${newver:+@$newver}") ;;
    esac
  done < <(grep '=>' "$gomod")
  if ((${#edits[@]})); then (cd "$dir" && go mod edit "${edits[@]}"); fi
  echo "$dir"
}

# build_one BINARY WRAPPER_DIR PACKAGE LDFLAGS [DEST]: one line per binary with its time.
# DEST is the directory it goes to, $BIN_DIR by default.
build_one() {
  local bin=$1 dir=$2 pkg=$3 ldflags=$4 dest=${5:-$BIN_DIR} t0
  if [[ -x "$dest/$bin" ]]; then echo "  $bin: already built"; return; fi
  t0=$(date +%s)
  printf '  %-24s' "$bin"
  # Sequential builds with the default -p (2 cores here): parallel links of kube-apiserver and
  # friends would thrash the machine. Build to a temp name so an interrupted run leaves nothing
  # that looks finished.
  if ! (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$dest/.$bin.tmp" "$pkg") >"$CACHE/build-$bin.log" 2>&1; then
    echo "FAILED"
    tail -n 40 "$CACHE/build-$bin.log" >&2
    echo "build.sh: building $bin from $pkg failed (full log: $CACHE/build-$bin.log)" >&2
    exit 1
  fi
  mv -f "$dest/.$bin.tmp" "$dest/$bin"
  echo "$(($(date +%s) - t0)) s"
}

# start_build LOCK DIR DONE: takes the lock file LOCK (several test processes may ask for the
# binaries at once: one builds, the others wait for it), then fails if the function DONE finds
# DIR complete; with THRIFTY_REBUILD, empties DIR instead. (Running clusters keep their
# processes: they hold the old files open.) The lock is held until the script exits.
start_build() {
  local lock=$1 dir=$2 done=$3 fd
  exec {fd}>"$lock"
  if command -v flock >/dev/null; then flock "$fd"; fi
  if [[ -n "${THRIFTY_REBUILD:-}" ]]; then
    rm -rf "$dir"
  elif "$done"; then
    return 1
  fi
  mkdir -p "$dir"
}

build_control_plane() {
  local start t0 k8s_dir k8s_info k8s_commit k8s_date k8s_minor k8s_ld p etcd_dir kwok_dir ms_dir kwok_ld ms_src b
  start_build "$CACHE/build.lock" "$BIN_DIR" complete || return 0

  start=$(date +%s)
  echo "building the local control plane into $BIN_DIR ($(go version | cut -d' ' -f3))"

  # Kubernetes: version ldflags as hack/lib/version.sh sets them, so that `kubectl version` and the
  # server report v1.37.2 (kwokctl picks component flags by the version the binaries print).
  t0=$(date +%s)
  k8s_dir=$(wrapper_module kubernetes k8s.io/kubernetes "$K8S_VERSION" "v0.${K8S_VERSION#v1.}")
  # The proxy's .info file has the release time (and, when the proxy recorded it, the commit).
  k8s_info=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | json_field Info)
  k8s_commit=$(grep -o '"Hash":"[0-9a-f]*"' "$k8s_info" | cut -d'"' -f4 || true)
  k8s_date=$(grep -o '"Time":"[^"]*"' "$k8s_info" | cut -d'"' -f4 || true)
  k8s_minor=${K8S_VERSION#v1.} k8s_minor=${k8s_minor%%.*}
  k8s_ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
    k8s_ld+=" -X $p.gitTreeState=clean -X $p.buildDate=${k8s_date:-unknown}${k8s_commit:+ -X $p.gitCommit=$k8s_commit}"
  done
  etcd_dir=$(wrapper_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION")
  kwok_dir=$(wrapper_module kwok sigs.k8s.io/kwok "$KWOK_VERSION")
  ms_dir=$(wrapper_module metrics-server sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION")
  echo "  wrapper modules ready in $(($(date +%s) - t0)) s ($CACHE/src)"

  build_one etcd "$etcd_dir" go.etcd.io/etcd/server/v3 ""
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    build_one "$b" "$k8s_dir" "k8s.io/kubernetes/cmd/$b" "$k8s_ld"
  done
  # kwokctl fills in defaults (and decides component flags) from these.
  kwok_ld="-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"
  build_one kwok "$kwok_dir" sigs.k8s.io/kwok/cmd/kwok "$kwok_ld"
  build_one kwokctl "$kwok_dir" sigs.k8s.io/kwok/cmd/kwokctl "$kwok_ld"
  build_one metrics-server "$ms_dir" sigs.k8s.io/metrics-server/cmd/metrics-server \
    "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"

  if [[ ! -s "$MS_MANIFEST/components.yaml" ]]; then
    ms_src=$(go mod download -json "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" | json_field Dir)
    mkdir -p "$MS_MANIFEST"
    # (kustomize warns about metrics-server's deprecated commonLabels: keep that out of the output)
    "$BIN_DIR/kubectl" kustomize "$ms_src/manifests/overlays/release" >"$MS_MANIFEST/components.yaml.tmp" \
      2>"$CACHE/build-manifest.log" || { cat "$CACHE/build-manifest.log" >&2; exit 1; }
    mv -f "$MS_MANIFEST/components.yaml.tmp" "$MS_MANIFEST/components.yaml"
    # kwokctl treats a non-URL manifest source as a kustomize directory.
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- components.yaml\n' \
      >"$MS_MANIFEST/kustomization.yaml"
    echo "  metrics-server manifest rendered"
  fi

  # Sanity check before declaring the set complete: the versions kwokctl will parse.
  [[ "$("$BIN_DIR/kubectl" version --client 2>/dev/null)" == *"$K8S_VERSION"* ]] ||
    { echo "build.sh: kubectl does not report $K8S_VERSION" >&2; exit 1; }
  [[ "$("$BIN_DIR/etcd" --version)" == *"${ETCD_VERSION#v}"* ]] ||
    { echo "build.sh: etcd does not report $ETCD_VERSION" >&2; exit 1; }

  echo "$KEY" >"$STAMP"
  echo "built ${#BINARIES[@]} binaries in $(($(date +%s) - start)) s"
}

# helm, from helm.sh/helm/v4. Its go.mod has no replace directives, but a wrapper module like the
# others' lets build_one build it to a temp name (`go install` cannot). Its own lock:
# `hack/build.sh helm` need not wait for a control plane build.
build_helm() {
  local start dir ld
  start_build "$CACHE/build-helm.lock" "$HELM_DIR" helm_complete || return 0

  start=$(date +%s)
  echo "building helm into $HELM_DIR ($(go version | cut -d' ' -f3))"
  dir=$(wrapper_module helm helm.sh/helm/v4 "$HELM_VERSION")
  # As helm's Makefile sets them for a release tag, so that `helm version` says v4.3.2.
  ld="-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  build_one helm "$dir" helm.sh/helm/v4/cmd/helm "$ld" "$HELM_DIR"
  [[ "$("$HELM_DIR/helm" version --template '{{.Version}}')" == "$HELM_VERSION" ]] ||
    { echo "build.sh: helm does not report $HELM_VERSION" >&2; exit 1; }
  echo "$HELM_VERSION" >"$HELM_STAMP"
  echo "built helm in $(($(date +%s) - start)) s"
}

if [[ "$WHAT" == all ]]; then build_control_plane; fi
build_helm
if [[ "$WHAT" == helm ]]; then echo "$HELM_DIR"; exit 0; fi
# The control plane's directory carries helm too, so one PATH entry holds every tool the tests use.
# A new link renamed over the old one: a concurrent reader never finds it missing.
if ! linked; then
  ln -sfn "$HELM_DIR/helm" "$BIN_DIR/.helm.link.$$"
  mv -Tf "$BIN_DIR/.helm.link.$$" "$BIN_DIR/helm"
fi
echo "$BIN_DIR"
