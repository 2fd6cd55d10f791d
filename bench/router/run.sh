#!/bin/sh
# Router benchmark: flynn-router beside nginx and HAProxy (see README.md).
# Installs Debian's nginx (and its stream module), haproxy and wrk when missing (never anything else),
# builds flynn-router when missing, then runs run.py. Not part of `make test`.
#   DURATION=10 REPEATS=3 WORKLOADS=a,b,c,d,e,f bench/router/run.sh
set -eu
cd "$(dirname "$0")/../.."
missing=""
for p in nginx haproxy wrk openssl; do
    command -v "$p" >/dev/null 2>&1 || missing="$missing $p"
done
# nginx's stream module (TCP proxying, workloads e and f) is its own package
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing="$missing libnginx-mod-stream"
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "bench: missing:$missing; run as root or: sudo apt-get install$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends $missing || {
        apt-get update -q && apt-get install -y -q --no-install-recommends $missing; }
fi
[ -x build/bin/flynn-router ] || make -j"$(nproc)" build/bin/flynn-router
exec python3 bench/router/run.py "$@"
