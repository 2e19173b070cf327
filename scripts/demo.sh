#!/usr/bin/env bash
# The README's demo: the real RivetKit engine and an actor server (from npm),
# rivet-gateway in front of them with config.example.yaml as-is, and the Go
# client calling an actor through the gateway with a freshly minted JWT.
# Everything listens on loopback; everything started here is stopped on exit.
#   make demo                 run the demo and stop
#   KEEP=1 make demo          leave the stack running until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE_PORT="${ENGINE_PORT:-6420}"
export RIVET_ENGINE_URL="http://127.0.0.1:${ENGINE_PORT}"
export GATEWAY_LISTEN="${GATEWAY_LISTEN:-127.0.0.1:8080}"
export ADMIN_LISTEN="${ADMIN_LISTEN:-127.0.0.1:9090}"
# A fresh secret for this run: the example config reads it from the environment.
JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export JWT_SECRET

gw_pid=""
cleanup() {
	[ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
	integration/upstream/scripts/stop.sh "$ENGINE_PORT" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

echo "== starting the real RivetKit upstream (engine + actor server) on :$ENGINE_PORT"
integration/upstream/scripts/start.sh "$ENGINE_PORT"

echo "== checking config.example.yaml"
bin/rivet-gateway -config config.example.yaml -check

echo "== starting rivet-gateway on $GATEWAY_LISTEN (admin $ADMIN_LISTEN)"
bin/rivet-gateway -config config.example.yaml 2> >(sed 's/^/[gateway] /' >&2) &
gw_pid=$!
for _ in $(seq 1 100); do
	curl -sf "http://$ADMIN_LISTEN/readyz" >/dev/null 2>&1 && break
	kill -0 "$gw_pid" 2>/dev/null || { echo "gateway exited" >&2; exit 1; }
	sleep 0.1
done
curl -sf "http://$ADMIN_LISTEN/readyz" >/dev/null

echo "== calling an actor through the gateway with the Go client"
go run ./examples/demo -endpoint "http://$GATEWAY_LISTEN"

if [ "${KEEP:-}" = "1" ]; then
	echo "== stack running: gateway http://$GATEWAY_LISTEN, engine $RIVET_ENGINE_URL; Ctrl-C stops it"
	wait "$gw_pid"
fi
