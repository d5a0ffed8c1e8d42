#!/usr/bin/env bash
# Install what lamina and its tests need on a Debian machine (run as root), and make .venv.
# Idempotent: packages already installed are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(busybox-static runc crun docker.io skopeo umoci docker-registry apache2-utils chromium shellcheck)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for c in python3.13 python3.12 python3.11 python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            PY=$(command -v "$c"); break
        fi
    done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11+ is needed" >&2; exit 1; }
# Resolve a pyenv shim to the real interpreter so the venv does not pay the shim's start-up cost.
PY=$("$PY" -c 'import sys; print(sys.executable)')
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,oracle]' 2>&1 \
    | grep -v -e '^WARNING: Location' || true
# Byte-compile now: this environment may set PYTHONDONTWRITEBYTECODE, and without .pyc
# files every lamina command would pay for compiling its modules again.
.venv/bin/python -m compileall -q src >/dev/null
echo "setup: ok ($(.venv/bin/python --version))"
