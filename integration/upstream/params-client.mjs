// The real RivetKit JS client against rivet-gateway injecting connection params server-side
// (params.source claims or http). Driven by integration/params_test.go; prints one JSON result
// line (see auth-lib.mjs).
//
// Environment:
//   RIVET_ENDPOINT_URL  the gateway
//   SCENARIO            server-params | service | service-down
//   KEY                 actor key
//   TOKEN               a JWT for the caller: Authorization: Bearer on HTTP (createClient
//                       headers), params.authToken on connect()
//   SPOOF_JSON          (server-params) params the client sends to try to set server keys
//   TOKEN_URL           (service) GET answers {token, exp}: a fresh JWT per call
//   SIGNAL_URL          (service-down) POSTed once the client has seen the failures
//   RECONNECT_MS        (service) bound for the reconnect after the first token expired (10000)
//   ENC                 client encoding (default bare)
import { createClient } from "rivetkit/client";
import { connectCounting, disposeQuietly, env, errorOf, fetchToken, reconnectMs, runScenario, track, waitFor, withTimeout } from "./auth-lib.mjs";

const endpoint = env("RIVET_ENDPOINT_URL");
const encoding = process.env.ENC ? { encoding: process.env.ENC } : {};
const key = [env("KEY")];

/** connect() with options, ready (bounded, errors quoted) and whoami. */
async function connectWhoami(client, opts, what) {
	const conn = client.counter.getOrCreate(key, opts).connect();
	const log = track(conn);
	try {
		await withTimeout(conn.ready, `${what}: conn.ready`).catch((e) => {
			e.message += `; errors seen: ${JSON.stringify(log.errors)}`;
			throw e;
		});
		return await withTimeout(conn.whoami(), `${what}: whoami`);
	} finally {
		await disposeQuietly(conn);
	}
}

/** Raw fetch() to onRequest; returns the params and authorization headers the actor received. */
async function rawFetchParams(handle, what) {
	const res = await withTimeout(handle.fetch("/params?x=1"), `${what}: fetch`);
	const body = await withTimeout(res.json(), `${what}: fetch body`);
	if (res.status !== 200) throw new Error(`${what}: status ${res.status}: ${JSON.stringify(body)}`);
	return { params: body.headers["x-rivet-conn-params"] ?? null, authorization: body.headers.authorization ?? null };
}

const scenarios = {
	// What the actor sees when the client sends no params, or spoofed ones, over connect(), a
	// stateless action and raw fetch(). HTTP authenticates with a bearer header; connect()
	// (which cannot carry headers) with params.authToken.
	async "server-params"() {
		const token = env("TOKEN");
		const spoof = JSON.parse(env("SPOOF_JSON"));
		const bearer = createClient({ endpoint, ...encoding, headers: { Authorization: `Bearer ${token}` } });
		const plain = createClient({ endpoint, ...encoding });
		const none = bearer.counter.getOrCreate(key);
		const spoofed = bearer.counter.getOrCreate(key, { params: spoof });
		return {
			httpNone: await withTimeout(none.whoami(), "http whoami without params"),
			httpSpoof: await withTimeout(spoofed.whoami(), "http whoami with spoofed params"),
			fetchNone: await rawFetchParams(none, "raw fetch without params"),
			fetchSpoof: await rawFetchParams(spoofed, "raw fetch with spoofed params"),
			connNone: await connectWhoami(plain, { getParams: async () => ({ authToken: token }) }, "connect with only authToken"),
			connSpoof: await connectWhoami(plain, { getParams: async () => ({ ...spoof, authToken: token }) }, "connect with spoofed params"),
		};
	},

	// Source http. connect() (while the test's service fails twice), a stateless action, then the
	// connection's token expires and the client reconnects: each must show a new fetch.
	async service() {
		const tokenURL = env("TOKEN_URL");
		const client = createClient({ endpoint, ...encoding });
		const tokens = [];
		const conn = client.counter
			.getOrCreate(key, {
				getParams: async () => {
					const { token, exp } = await fetchToken(tokenURL);
					tokens.push({ exp, fetchedAt: Date.now() });
					return { authToken: token };
				},
			})
			.connect();
		const log = track(conn);
		try {
			await withTimeout(conn.ready, "conn.ready").catch((e) => {
				e.message += `; errors seen: ${JSON.stringify(log.errors)}`;
				throw e;
			});
			const first = await withTimeout(conn.whoami(), "whoami");
			const http = await withTimeout(client.counter.getOrCreate(key, { params: { authToken: env("TOKEN") } }).whoami(), "http whoami");
			const connectedAt = Date.now();
			await waitFor(
				() => tokens.length >= 2 && log.statuses.some((s) => s.at >= connectedAt && s.status !== "connected") && conn.connStatus === "connected",
				"close at token expiry and reconnect",
				Math.max(0, tokens[0].exp - Date.now()) + reconnectMs,
			);
			const reconnected = await withTimeout(conn.whoami(), "whoami after reconnect");
			return { first, http, reconnected, getParamsCalls: tokens.length, ...log.snapshot() };
		} finally {
			await disposeQuietly(conn);
		}
	},

	// Source http with the service down: a stateless action fails with get_params_failed; connect()
	// fails, is retried by the client (several get_params_failed), and connects once the test has
	// brought the service back (after SIGNAL_URL).
	async "service-down"() {
		const token = env("TOKEN");
		const client = createClient({ endpoint, ...encoding });
		const httpError = await errorOf(client.counter.getOrCreate(key, { params: { authToken: token } }).whoami(), "http whoami");
		const { conn, log, calls } = connectCounting((o) => client.counter.getOrCreate(key, o), { authToken: token });
		try {
			const failures = () => log.errors.filter((e) => e.error === "client.get_params_failed").length;
			await waitFor(() => failures() >= 2 || conn.connStatus === "connected" || conn.connStatus === "idle", "two get_params_failed");
			if (failures() < 2) {
				return { httpError, ...log.snapshot(), status: conn.connStatus, getParamsCalls: calls(), stoppedEarly: true };
			}
			const signalledAt = Date.now();
			const res = await withTimeout(fetch(env("SIGNAL_URL"), { method: "POST" }), "signal");
			if (!res.ok) throw new Error(`signal: status ${res.status}`);
			// The client's backoff is at most 1 s at this point, then 2 s.
			await withTimeout(conn.ready, "conn.ready after the service is back", 15_000);
			const who = await withTimeout(conn.whoami(), "whoami");
			return { httpError, who, signalledAt, ...log.snapshot(), status: conn.connStatus, getParamsCalls: calls() };
		} finally {
			await disposeQuietly(conn);
		}
	},
};

await runScenario(scenarios);
