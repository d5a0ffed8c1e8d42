#!/usr/bin/env bash
# Start (or stop) the services the compat tests talk to, on loopback only:
#   a private dockerd (own data root and socket; no bridge, no iptables) and a docker-registry.
# Usage: scripts/services.sh start DIR   -> prints `export ...` lines to eval
#        scripts/services.sh stop DIR
set -euo pipefail
cmd=$1 dir=$2
mkdir -p "$dir"
case "$cmd" in
start)
    if command -v dockerd >/dev/null; then
        dockerd --bridge=none --iptables=false --ip6tables=false \
            --data-root "$dir/docker" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
            --host "unix://$dir/docker.sock" >"$dir/dockerd.log" 2>&1 &
        for _ in $(seq 1 100); do
            /usr/bin/docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 && break
            sleep 0.2
        done
        /usr/bin/docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 \
            || { echo "services: dockerd did not start; see $dir/dockerd.log" >&2; tail -5 "$dir/dockerd.log" >&2; }
        echo "export DOCKER_HOST=unix://$dir/docker.sock"
    fi
    if command -v docker-registry >/dev/null; then
        port=${LAMINA_TEST_REGISTRY_PORT:-5000}
        cat >"$dir/registry.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
        docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
        echo $! >"$dir/registry.pid"
        echo "export LAMINA_TEST_REGISTRY=127.0.0.1:$port"
    fi
    ;;
stop)
    for f in registry.pid docker.pid; do
        if [ -f "$dir/$f" ]; then
            pid=$(cat "$dir/$f")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    # dockerd leaves its data root's mounts behind if it was killed hard.
    grep -o " $dir/[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    ;;
esac
