#!/usr/bin/env bash
# Start a fully local RivetKit stack for the rivet-gateway end-to-end tests:
#   1. the Rivet Engine binary shipped in npm (@rivetkit/engine-cli-linux-x64-musl) on
#      127.0.0.1:PORT (guard: the only port clients use), PORT+1 (api-peer), PORT+10 (metrics);
#   2. server.mjs, the actor process, which dials that engine (RIVET_ENDPOINT); not with
#      ACTOR_SERVER=none (scripts/start-serverless.sh, whose actors run in workerd instead).
# We start the engine ourselves instead of letting rivetkit spawn it, because a rivetkit-spawned
# engine is re-parented and outlives the node process.
#
# State, logs and PIDs live in .run/PORT/ (wiped on every start):
#   engine.json engine.log server.log engine.pid server.pid [watchdog.pid] db/
# scripts/stop.sh PORT ends exactly those PIDs.
#
# usage: scripts/start.sh PORT
# env:   READY_TIMEOUT  seconds to wait for engine health, actor server READY and a first
#                       actor's answer (default 60)
#        WATCH_PID      if set, a watchdog runs stop.sh as soon as that process is gone
#                       (the Go harness passes the test binary's PID: no stray engines even
#                       when the test binary is killed before its cleanups run)
#        ENGINE_ADMIN_TOKEN  if set, the engine requires it (auth.admin_token: Authorization:
#                       Bearer on its management API, /actors...), as a hosted engine requires
#                       its namespace token, and server.mjs presents it (RIVET_TOKEN)
#        ACTOR_SERVER   envoy (default): start server.mjs; none: only the engine
# exit:  0 ready, 3 one of the ports is taken (pick another), 1 anything else; on failure
#        whatever was started is stopped again.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$PWD"
PORT="${1:?usage: scripts/start.sh PORT}"
case "$PORT" in *[!0-9]*) echo "start.sh: bad port: $PORT" >&2; exit 2 ;; esac
TIMEOUT="${READY_TIMEOUT:-60}"
ACTOR_SERVER="${ACTOR_SERVER:-envoy}"
case "$ACTOR_SERVER" in envoy | none) ;; *) echo "start.sh: ACTOR_SERVER must be envoy or none: $ACTOR_SERVER" >&2; exit 2 ;; esac
RUN="$DIR/.run/$PORT"

if [ ! -d node_modules/rivetkit ]; then
	echo "start.sh: $DIR/node_modules is missing: run 'make test' or 'npm install --no-audit --no-fund' in $DIR" >&2
	exit 1
fi
if [ -f "$RUN/engine.pid" ] || [ -f "$RUN/server.pid" ]; then
	echo "start.sh: $RUN has PID files: a stack may still run on port $PORT (scripts/stop.sh $PORT)" >&2
	exit 1
fi
rm -rf "$RUN"
mkdir -p "$RUN"
ENGINE="$(node -e "process.stdout.write(require('@rivetkit/engine-cli').getEnginePath())")"
T0=$(date +%s%N)
DEADLINE=$(( $(date +%s) + TIMEOUT ))

# fail MSG [STATUS]: print MSG, stop whatever was started, exit STATUS (default 1).
fail() {
	echo "start.sh: $1 (logs in $RUN)" >&2
	"$DIR/scripts/stop.sh" "$PORT" >/dev/null 2>&1 || true
	exit "${2:-1}"
}

# check_ports: exit 3 if the engine could not bind one of its ports. The engine does not exit
# then: it logs "service crashed ... Address in use" and keeps restarting that service, and
# /health may even be answered by whoever owns the port.
check_ports() {
	if grep -q "Address in use" "$RUN/engine.log" 2>/dev/null; then
		fail "port $PORT, $((PORT + 1)) or $((PORT + 10)) is already in use" 3
	fi
}

# The engine's own datacenter, named with the address it really has: without a topology it
# calls itself http://127.0.0.1:6420, and it names itself so in every serverless start request,
# which RivetKit refuses when that is not the endpoint it dials (config.endpoint_mismatch).
cat >"$RUN/engine.json" <<EOF
{"topology": {"datacenter_label": 1, "datacenters": [{"name": "default", "datacenter_label": 1,
  "is_leader": true, "peer_url": "http://127.0.0.1:$((PORT + 1))", "public_url": "http://127.0.0.1:$PORT"}]}}
EOF

# Same settings rivetkit-core uses for its local dev engine, plus short pegboard/shutdown timers
# so that actors are scheduled fast and the engine stops within a couple of seconds, and no
# telemetry (tests stay on loopback).
TOKEN_ENV=()
if [ -n "${ENGINE_ADMIN_TOKEN:-}" ]; then
	TOKEN_ENV=(RIVET__AUTH__ADMIN_TOKEN="$ENGINE_ADMIN_TOKEN")
fi
env RIVET__TELEMETRY__ENABLED=false "${TOKEN_ENV[@]}" \
	RIVET__GUARD__HOST=127.0.0.1 RIVET__GUARD__PORT="$PORT" \
	RIVET__API_PEER__HOST=127.0.0.1 RIVET__API_PEER__PORT="$((PORT + 1))" \
	RIVET__METRICS__HOST=127.0.0.1 RIVET__METRICS__PORT="$((PORT + 10))" \
	RIVET__FILE_SYSTEM__PATH="$RUN/db" \
	RIVET__FEATURES__GUARD_GATEWAY_V3__MODE=on RIVET__FEATURES__GUARD_GATEWAY_V3__PERCENTAGE=100 \
	RIVET__PEGBOARD__BASE_RETRY_TIMEOUT=100 RIVET__PEGBOARD__RETRY_RESET_DURATION=100 \
	RIVET__PEGBOARD__RESCHEDULE_BACKOFF_MAX_EXPONENT=1 \
	RIVET__PEGBOARD__RUNNER_ELIGIBLE_THRESHOLD=5000 RIVET__PEGBOARD__RUNNER_LOST_THRESHOLD=7000 \
	RIVET__PEGBOARD__ENVOY_ELIGIBLE_THRESHOLD=5000 RIVET__PEGBOARD__ENVOY_LOST_THRESHOLD=7000 \
	RIVET__PEGBOARD__MIN_METADATA_POLL_INTERVAL=1000 \
	RIVET__RUNTIME__FORCE_SHUTDOWN_DURATION=2 RIVET__RUNTIME__GUARD_SHUTDOWN_DURATION=1 \
	RIVET__RUNTIME__WORKER_SHUTDOWN_DURATION=1 \
	"$ENGINE" start --config "$RUN/engine.json" </dev/null >"$RUN/engine.log" 2>&1 &
echo $! >"$RUN/engine.pid"

# The watchdog goes up right after the first process, so nothing can leak from here on.
if [ -n "${WATCH_PID:-}" ]; then
	(
		while kill -0 "$WATCH_PID" 2>/dev/null; do sleep 0.5; done
		exec "$DIR/scripts/stop.sh" "$PORT"
	) </dev/null >"$RUN/watchdog.log" 2>&1 &
	echo $! >"$RUN/watchdog.pid"
fi

# Ready = our engine says it listens on PORT and /health answers.
until grep -q "HTTP server listening on 127.0.0.1:$PORT\b" "$RUN/engine.log" 2>/dev/null &&
	curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/health"; do
	check_ports
	kill -0 "$(cat "$RUN/engine.pid")" 2>/dev/null || fail "engine exited"
	[ "$(date +%s)" -lt "$DEADLINE" ] || fail "engine not healthy after ${TIMEOUT}s"
	sleep 0.1
done
T1=$(date +%s%N)
if [ "$ACTOR_SERVER" = none ]; then
	check_ports
	echo "rivet engine ready on http://127.0.0.1:$PORT in $(( (T1 - T0) / 1000000 ))ms (engine pid $(cat "$RUN/engine.pid"), no actor server)"
	exit 0
fi

# RIVET_ENDPOINT set => rivetkit spawns no engine; RIVET_RUN_SERVICES=0 => no rivet-services.
TOKEN_ENV=()
if [ -n "${ENGINE_ADMIN_TOKEN:-}" ]; then
	TOKEN_ENV=(RIVET_TOKEN="$ENGINE_ADMIN_TOKEN")
fi
env RIVET_ENDPOINT="http://127.0.0.1:$PORT" RIVET_RUN_SERVICES=0 RIVETKIT_STORAGE_PATH="$RUN" "${TOKEN_ENV[@]}" \
	node server.mjs </dev/null >"$RUN/server.log" 2>&1 &
echo $! >"$RUN/server.pid"

until grep -q "READY" "$RUN/server.log" 2>/dev/null; do
	kill -0 "$(cat "$RUN/server.pid")" 2>/dev/null || fail "actor server exited"
	[ "$(date +%s)" -lt "$DEADLINE" ] || fail "actor server not READY after ${TIMEOUT}s"
	sleep 0.1
done
check_ports

# Ready = an actor answers. READY only says the actor server is connected: under load the
# engine has left the first actor of a fresh stack unallocated past its 15 s route timeout
# (pegboard.route_resolve_query_timeout), failing whichever test asked first. So one actor,
# counter ["start-warmup"], is started here, as start-serverless.sh does for its pool.
warm="http://127.0.0.1:$PORT/gateway/counter/action/getCount?rvt-namespace=default&rvt-method=getOrCreate"
warm+="&rvt-runner=default&rvt-key=start-warmup&rvt-crash-policy=sleep"
TOKEN_HDR=()
if [ -n "${ENGINE_ADMIN_TOKEN:-}" ]; then
	TOKEN_HDR=(-H "x-rivet-token: $ENGINE_ADMIN_TOKEN")
fi
until out="$(curl -s --max-time 20 -X POST "$warm" "${TOKEN_HDR[@]}" -H 'content-type: application/json' \
	-H 'x-rivet-encoding: json' -H 'x-rivet-conn-params: {"token":"warmup"}' -d '{"args":[]}')" &&
	[[ "$out" == '{"output":'* ]]; do
	kill -0 "$(cat "$RUN/server.pid")" 2>/dev/null || fail "actor server exited"
	[ "$(date +%s)" -lt "$DEADLINE" ] || fail "no actor answered within ${TIMEOUT}s (last: ${out:-nothing})"
	sleep 0.2
done
T2=$(date +%s%N)
echo "rivet upstream ready on http://127.0.0.1:$PORT: engine $(( (T1 - T0) / 1000000 ))ms, server and first actor $(( (T2 - T1) / 1000000 ))ms (engine pid $(cat "$RUN/engine.pid"), server pid $(cat "$RUN/server.pid"))"
