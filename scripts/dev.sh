#!/usr/bin/env bash
# One entry point for a fresh machine: sets up what it needs, then does the job.
#   scripts/dev.sh demo   set up and run the service on its embedded demo stream (no broker needed)
#   scripts/dev.sh test   set up everything the tests need (Kafka jars, Prometheus, validators) and run them
#   scripts/dev.sh setup  only the Python environment
# Every step is skipped when already done, so a second run starts at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIFELONG_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
export LIFELONG_CACHE="${LIFELONG_CACHE:-$ROOT/.cache}"

log() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    log "installing Debian packages: $*"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

setup_python() {
    if [ ! -x "$PY" ]; then
        log "creating virtual environment $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.lifelong-installed"
    # Reinstall only when the dependency lists changed.
    local want
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/clients/python/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing lifelong and its dev dependencies (first time: torch is large, a few minutes)"
        "$PY" -m pip install -q --upgrade pip
        "$PY" -m pip install -q -e "$ROOT/clients/python" -e "$ROOT[dev]"
        echo "$want" >"$stamp"
    fi
}

setup_test_tools() {
    command -v java >/dev/null && command -v mvn >/dev/null || apt_install openjdk-17-jre-headless maven
    command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_install prometheus
    # The status page's browser test drives Debian's chromium headless (no browser download).
    command -v chromium >/dev/null || apt_install chromium
    "$ROOT/deploy/kafka/kafka-dev.sh" fetch
    # Go builds grpcurl and the deployment validators; Debian's golang-go is too old for them.
    command -v go >/dev/null || { log "Go >= 1.22 is needed (https://go.dev/dl)"; exit 1; }
    # Validators for the deployment tests (hadolint, kubeconform, compose, Kubernetes schemas).
    "$ROOT/tests/deploy/tools/fetch.sh"
}

case "${1:-}" in
    setup)
        setup_python
        ;;
    demo)
        setup_python
        shift
        exec "$VENV/bin/lifelong" serve --demo "$@"
        ;;
    test)
        setup_python
        setup_test_tools
        shift
        exec "$VENV/bin/pytest" "$@"
        ;;
    *)
        sed -n '2,6p' "$0" >&2
        exit 2
        ;;
esac
