#!/usr/bin/env bash
# The main job end to end, offline: make a busybox base image, import it, build an
# application image on it from a Dockerfile, run it, and show the layers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LAMINA_ROOT=${LAMINA_ROOT:-/var/lib/lamina}
L=.venv/bin/lamina
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== make a base image offline (Debian's busybox-static) and import it"
python3 tools/mkrootfs.py "$work/rootfs.tar"
$L import -c 'CMD ["sh"]' "$work/rootfs.tar" base:1

echo "== build examples/hello-app"
$L build -t hello:1 examples/hello-app

echo "== run it"
$L run --rm hello:1

echo "== images, layers, history"
$L images
$L history hello:1
$L analyze hello:1
$L system df

echo "== save it for Docker"
$L save -o "$work/hello.tar" hello:1 && ls -l "$work/hello.tar"
