#!/usr/bin/env bash
# Stop what scripts/start.sh PORT started, by recorded PID only (never by name).
# Order matters: the actor server first (it stops its actors through the engine: ~0.1 s), then
# the engine (~0.1 s). Stopping both at once makes the server wait ~7 s for the engine's
# "envoy lost" threshold. Each process gets SIGTERM, up to 10 s to exit, then SIGKILL; except
# the serverless worker (workerd, scripts/start-serverless.sh), which gets SIGKILL at once: on
# SIGTERM workerd waits for its in-flight requests, and the engine's /api/rivet/start requests
# last request_lifespan, past the engine's own end (RivetKit's wasm handler does not end them
# when the engine goes away). It holds no state: the actors' state is in the engine.
# Logs in .run/PORT/ are kept.
# usage: scripts/stop.sh PORT
set -uo pipefail
cd "$(dirname "$0")/.."
PORT="${1:?usage: scripts/stop.sh PORT}"
RUN=".run/$PORT"

# alive PID: true while PID runs. A zombie (exited, not yet reaped by its new parent, which
# may take a while in containers) counts as gone.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	local state
	state="$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 0
	[ "$state" != "Z" ]
}

# stop NAME [SIGNAL]: end the process whose PID is in .run/PORT/NAME.pid with SIGNAL (default
# TERM; SIGKILL after 10 s), then remove that file.
stop() {
	local f="$RUN/$1.pid" sig="${2:-TERM}" pid
	[ -f "$f" ] || return 0
	pid="$(cat "$f")"
	# The watchdog execs this script, so its PID is ours: never signal ourselves.
	if [ -n "$pid" ] && [ "$pid" != "$$" ] && alive "$pid"; then
		kill -"$sig" "$pid" 2>/dev/null
		for _ in $(seq 1 100); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			echo "stop.sh: $1 (pid $pid) still running 10s after SIG$sig: SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	rm -f "$f"
}

stop watchdog
stop worker KILL
stop server
stop engine
echo "stopped rivet upstream on port $PORT"
