#!/usr/bin/env bash
# The test command: static checks, then the test suite.  Run after scripts/setup.sh;
# compat tests use DOCKER_HOST / LAMINA_TEST_REGISTRY when set (see scripts/services.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
rc=0
echo "== ruff";         $V/ruff check src tests bench tools || rc=1
echo "== mypy";         $V/mypy || rc=1
echo "== import-linter"; $V/lint-imports >/tmp/lamina-lint-imports.log 2>&1 \
    && tail -1 /tmp/lamina-lint-imports.log || { cat /tmp/lamina-lint-imports.log; rc=1; }
echo "== pytest"
$V/python -m pytest -q -p no:cacheprovider tests "$@"
prc=$?
[ "$prc" -eq 5 ] && { echo "check: no tests were collected" >&2; prc=1; }
[ "$prc" -ne 0 ] && rc=$prc
exit "$rc"
