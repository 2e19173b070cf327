#!/usr/bin/env bash
# Start a local RivetKit stack whose actors are serverless, as on Cloudflare Workers:
#   1. the Rivet Engine, as scripts/start.sh starts it (ACTOR_SERVER=none): 127.0.0.1:PORT
#      (guard, the only port clients use), PORT+1 (api-peer), PORT+10 (metrics);
#   2. workerd (Cloudflare's Workers runtime, npm workerd) on 127.0.0.1:PORT+2 serving
#      serverless/worker.mjs: RivetKit's registry.handler(request) under /api/rivet with the
#      WebAssembly core, bundled by serverless/build.mjs;
#   3. a serverless runner pool POOL registered with the engine
#      (PUT /runner-configs/POOL?namespace=default), whose url is that worker's /api/rivet: the
#      engine starts actors by calling POST /api/rivet/start there;
#   4. one actor started through the pool (counter ["start-serverless-warmup"], action runtime)
#      and checked to answer from workerd: ready means an actor is served end to end.
# The worker's publicEndpoint (what its /api/rivet/metadata tells clients to use) is
# http://127.0.0.1:PORT+3, left free for the gateway in front of the engine.
# Clients select the pool (rvt-runner=POOL, JS createClient({poolName}) or RIVET_POOL, Go
# rivetclient.WithPoolName) and talk to the engine only, never to the worker.
#
# State, logs and PIDs live in .run/PORT/ as with start.sh, plus worker/ (the bundle),
# worker.log and worker.pid. scripts/stop.sh PORT ends them all.
#
# usage: scripts/start-serverless.sh PORT
# env:   READY_TIMEOUT, WATCH_PID  as for start.sh (the watchdog also ends the worker)
#        POOL                      the runner pool's name (default serverless)
# exit:  0 ready, 3 one of the ports is taken (pick another), 1 anything else; on failure
#        whatever was started is stopped again.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$PWD"
PORT="${1:?usage: scripts/start-serverless.sh PORT}"
case "$PORT" in *[!0-9]*) echo "start-serverless.sh: bad port: $PORT" >&2; exit 2 ;; esac
POOL="${POOL:-serverless}"
case "$POOL" in "" | *[!a-z0-9-]*) echo "start-serverless.sh: bad pool name: $POOL" >&2; exit 2 ;; esac
TIMEOUT="${READY_TIMEOUT:-60}"
RUN="$DIR/.run/$PORT"
ENGINE_URL="http://127.0.0.1:$PORT"
WORKER_ADDR="127.0.0.1:$((PORT + 2))"
PUBLIC_ENDPOINT="http://127.0.0.1:$((PORT + 3))"
# The secret the engine's requests to the worker carry (the pool's headers); the worker refuses
# its routes but metadata without it.
WORKER_SECRET="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
T0=$(date +%s%N)
DEADLINE=$(( $(date +%s) + TIMEOUT ))

# The engine (and the watchdog). Its exit status 3 (ports taken) is ours.
ACTOR_SERVER=none "$DIR/scripts/start.sh" "$PORT"

# fail MSG [STATUS]: print MSG, stop whatever was started, exit STATUS (default 1).
fail() {
	echo "start-serverless.sh: $1 (logs in $RUN)" >&2
	"$DIR/scripts/stop.sh" "$PORT" >/dev/null 2>&1 || true
	exit "${2:-1}"
}

node serverless/build.mjs "$RUN/worker" >"$RUN/build.log" 2>&1 || fail "serverless/build.mjs failed: $(tail -5 "$RUN/build.log")"

WORKERD="$DIR/node_modules/.bin/workerd"
[ -x "$WORKERD" ] || fail "$WORKERD is missing: run 'npm install --no-audit --no-fund' in $DIR"
RIVET_ENDPOINT="$ENGINE_URL" RIVET_PUBLIC_ENDPOINT="$PUBLIC_ENDPOINT" WORKER_SECRET="$WORKER_SECRET" "$WORKERD" serve "$RUN/worker/workerd.capnp" --socket-addr "http=$WORKER_ADDR" \
	</dev/null >"$RUN/worker.log" 2>&1 &
echo $! >"$RUN/worker.pid"

# Ready = the worker answers its metadata route (which loads the wasm core).
until curl -sf -o /dev/null --max-time 2 "http://$WORKER_ADDR/api/rivet/metadata"; do
	if grep -q "Address already in use" "$RUN/worker.log" 2>/dev/null; then
		fail "worker port $((PORT + 2)) is already in use" 3
	fi
	kill -0 "$(cat "$RUN/worker.pid")" 2>/dev/null || fail "workerd exited: $(tail -5 "$RUN/worker.log")"
	[ "$(date +%s)" -lt "$DEADLINE" ] || fail "worker not answering after ${TIMEOUT}s"
	sleep 0.1
done
T1=$(date +%s%N)

# The pool, as an operator registers it (RivetKit's configurePool sends the same request). One
# actor per runner and no idle runners, as RivetKit configures it; request_lifespan bounds each
# start request (drain_grace_period must be shorter).
status="$(curl -s -o "$RUN/runner-config.json" -w '%{http_code}' --max-time 10 -X PUT \
	-H 'content-type: application/json' "$ENGINE_URL/runner-configs/$POOL?namespace=default" \
	-d '{"datacenters": {"default": {"serverless": {
		"url": "http://'"$WORKER_ADDR"'/api/rivet", "headers": {"x-worker-secret": "'"$WORKER_SECRET"'"},
		"request_lifespan": 300, "drain_grace_period": 10, "metadata_poll_interval": 1000,
		"max_runners": 1000, "min_runners": 0, "runners_margin": 0, "slots_per_runner": 1}}}}')" ||
	fail "PUT /runner-configs/$POOL: curl failed"
[ "$status" = 200 ] || fail "PUT /runner-configs/$POOL: status $status: $(cat "$RUN/runner-config.json")"

# Ready = an actor of the pool answers, from workerd (its navigator.userAgent).
warm="$ENGINE_URL/gateway/counter/action/runtime?rvt-namespace=default&rvt-method=getOrCreate"
warm+="&rvt-runner=$POOL&rvt-key=start-serverless-warmup&rvt-crash-policy=sleep"
until out="$(curl -s --max-time 10 -X POST "$warm" -H 'content-type: application/json' \
	-H 'x-rivet-encoding: json' -H 'x-rivet-conn-params: {"token":"warmup"}' -d '{"args":[]}')" &&
	[ "$out" = '{"output":"Cloudflare-Workers"}' ]; do
	kill -0 "$(cat "$RUN/worker.pid")" 2>/dev/null || fail "workerd exited: $(tail -5 "$RUN/worker.log")"
	[ "$(date +%s)" -lt "$DEADLINE" ] || fail "no actor of pool $POOL answered within ${TIMEOUT}s (last: ${out:-nothing})"
	sleep 0.2
done
T2=$(date +%s%N)
echo "rivet serverless upstream ready on $ENGINE_URL: pool $POOL -> workerd http://$WORKER_ADDR/api/rivet (worker $(( (T1 - T0) / 1000000 ))ms, first actor $(( (T2 - T1) / 1000000 ))ms; worker pid $(cat "$RUN/worker.pid"))"
