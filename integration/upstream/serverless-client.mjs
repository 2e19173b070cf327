// The real RivetKit JS client reaching serverless actors (the counter served by RivetKit's
// handler(request) in workerd, scripts/start-serverless.sh) through rivet-gateway, as a browser
// app would: a bearer JWT on HTTP, the JWT in getParams (params.authToken) on connect(), the
// gateway building the actor's params from the verified token. Driven by
// integration/serverless_test.go; prints one JSON result line (see auth-lib.mjs).
//
// Environment:
//   RIVET_ENDPOINT_URL  the gateway
//   POOL                the serverless runner pool (createClient({poolName}): rvt-runner=POOL)
//   KEY                 the caller's counter key (the gateway binds counter keys to the sub)
//   OTHER_KEY           someone else's counter key: every way to it must be refused
//   TOKEN               a JWT for the caller: Authorization: Bearer on HTTP
//   TOKEN_URL           GET answers {token, exp}: a fresh JWT per call, the first one short-lived
//   RECONNECT_MS        bound for the reconnect after the first token expired (10000)
//   NO_RETRY_MS         how long the refused connection is watched for retries (1000)
//   ENC                 client encoding (default bare)
import { createClient } from "rivetkit/client";
import { connectCounting, disposeQuietly, env, errorOf, fetchToken, reconnectMs, run, track, waitFor, withTimeout } from "./auth-lib.mjs";

const endpoint = env("RIVET_ENDPOINT_URL");
const options = { endpoint, poolName: env("POOL"), ...(process.env.ENC ? { encoding: process.env.ENC } : {}) };
const key = [env("KEY")];
const otherKey = [env("OTHER_KEY")];
const token = env("TOKEN");
const tokenURL = env("TOKEN_URL");
const noRetryMs = Number(process.env.NO_RETRY_MS || 1_000);

// HTTP (stateless actions, raw fetch) carries the JWT as a bearer header; WebSockets cannot carry
// headers, so connect() carries it in its params.
const bearer = createClient({ ...options, headers: { Authorization: `Bearer ${token}` } });
const plain = createClient(options);

/** Stateless actions: where the actor runs, a count, and the params it saw. */
async function stateless() {
	const handle = bearer.counter.getOrCreate(key);
	return {
		runtime: await withTimeout(handle.runtime(), "http runtime"),
		count: await withTimeout(handle.increment(5), "http increment"),
		who: await withTimeout(handle.whoami(), "http whoami"),
	};
}

/**
 * connect() with getParams fetching a JWT each time: an action and its event, then the first
 * token expires, the gateway closes the socket (ws.going_away), the client reconnects with a
 * fresh token, and the connection works again.
 */
async function connection() {
	const tokens = [];
	const events = [];
	const conn = plain.counter
		.getOrCreate(key, {
			getParams: async () => {
				const { token, exp } = await fetchToken(tokenURL);
				tokens.push({ exp, fetchedAt: Date.now() });
				return { authToken: token };
			},
		})
		.connect();
	conn.on("newCount", (n) => events.push(n));
	const log = track(conn);
	try {
		await withTimeout(conn.ready, "conn.ready").catch((e) => {
			e.message += `; errors seen: ${JSON.stringify(log.errors)}`;
			throw e;
		});
		const before = await withTimeout(conn.whoami(), "whoami before expiry");
		const first = await withTimeout(conn.increment(2), "increment before expiry");
		await waitFor(() => events.includes(first), `event ${first}`);
		const connectedAt = Date.now();
		await waitFor(
			() =>
				tokens.length >= 2 &&
				log.statuses.some((s) => s.at >= connectedAt && s.status !== "connected") &&
				conn.connStatus === "connected",
			"close at token expiry and reconnect",
			Math.max(0, tokens[0].exp - Date.now()) + reconnectMs,
		);
		const after = await withTimeout(conn.whoami(), "whoami after reconnect");
		const second = await withTimeout(conn.increment(3), "increment after reconnect");
		await waitFor(() => events.includes(second), `event ${second}`);
		return { before, after, counts: [first, second], events, getParamsCalls: tokens.length, ...log.snapshot() };
	} finally {
		await disposeQuietly(conn);
	}
}

/** The caller's valid token on someone else's counter, over HTTP and over connect(). */
async function otherCounter() {
	const http = await errorOf(bearer.counter.getOrCreate(otherKey).whoami(), "http whoami of the other counter");
	const { conn, log, calls } = connectCounting((o) => plain.counter.getOrCreate(otherKey, o), { authToken: token });
	try {
		await waitFor(() => log.errors.length > 0 || conn.connStatus === "connected", "an error on the other counter");
		const errorAt = Date.now();
		// A retry would call getParams again within 250 ms (the client's first backoff).
		await waitFor(() => Date.now() - errorAt >= noRetryMs, "the no-retry window", noRetryMs + 1_000);
		return { http, connect: { ...log.snapshot(), status: conn.connStatus, getParamsCalls: calls() } };
	} finally {
		await disposeQuietly(conn);
	}
}

await run(async () => {
	const http = await stateless();
	const [conn, other] = await Promise.all([connection(), otherCounter()]);
	return { http, conn, other };
});
