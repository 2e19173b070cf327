// The real RivetKit JS client authenticating through rivet-gateway the way a browser does: the
// JWT travels in the connection params field authToken, which the gateway verifies and strips.
// Driven by integration/auth_test.go; prints one JSON result line (see auth-lib.mjs).
//
// Environment:
//   RIVET_ENDPOINT_URL  the gateway
//   SCENARIO            getparams | rejected | expiry
//   KEY                 actor key (the gateway binds counter keys to the token's sub)
//   TOKEN_URL           (getparams, expiry) GET answers {token, exp}: a fresh JWT per call
//   STATIC_TOKEN        (getparams) JWT for the stateless action's static params
//   BAD_TOKENS_JSON     (rejected) {caseName: jwt} tokens the gateway must refuse
//   NO_RETRY_MS         (rejected) how long a refused connection is watched for retries (1000)
//   RECONNECT_MS        (expiry) bound for the reconnect after the first token expired (10000)
//   ENC                 client encoding (default bare)
import { createClient } from "rivetkit/client";
import { connectCounting, describeError, disposeQuietly, env, errorOf, fetchToken, reconnectMs, runScenario, track, waitFor, withTimeout } from "./auth-lib.mjs";

const client = createClient({
	endpoint: env("RIVET_ENDPOINT_URL"),
	...(process.env.ENC ? { encoding: process.env.ENC } : {}),
});
const key = [env("KEY")];

const scenarios = {
	// connect() with getParams returning {authToken, token}, then a stateless action with static
	// params {authToken, token}: the actor sees both without authToken.
	async getparams() {
		const tokenURL = env("TOKEN_URL");
		let calls = 0;
		const conn = client.counter
			.getOrCreate(key, {
				getParams: async () => {
					const n = ++calls;
					const { token } = await fetchToken(tokenURL);
					return { authToken: token, token: `tok-${n}` };
				},
			})
			.connect();
		const log = track(conn);
		try {
			await withTimeout(conn.ready, "conn.ready").catch((e) => {
				e.message += `; errors seen: ${JSON.stringify(log.errors)}`;
				throw e;
			});
			const connWho = await withTimeout(conn.whoami(), "conn.whoami");
			const connCount = await withTimeout(conn.increment(1), "conn.increment");
			const handle = client.counter.getOrCreate(key, { params: { authToken: env("STATIC_TOKEN"), token: "static" } });
			const httpWho = await withTimeout(handle.whoami(), "http whoami");
			const httpCount = await withTimeout(handle.increment(2), "http increment");
			return { connWho, httpWho, counts: [connCount, httpCount], getParamsCalls: calls, errors: log.snapshot().errors };
		} finally {
			await disposeQuietly(conn);
		}
	},

	// Every token of BAD_TOKENS_JSON, over HTTP (a stateless action) and over connect(): both
	// must fail with auth.unauthorized, and the connection must not be retried.
	async rejected() {
		const tokens = JSON.parse(env("BAD_TOKENS_JSON"));
		const noRetryMs = Number(process.env.NO_RETRY_MS || 1_000);
		const cases = await Promise.all(
			Object.entries(tokens).map(async ([name, tok]) => {
				const params = { authToken: tok, token: "t" };
				const http = await errorOf(client.counter.getOrCreate(key, { params }).whoami(), `${name}: http whoami`);
				const { conn, log, calls } = connectCounting((o) => client.counter.getOrCreate(key, o), params);
				try {
					await waitFor(() => log.errors.length > 0 || conn.connStatus === "connected", `${name}: an error`);
					const errorAt = Date.now();
					// A retry would call getParams again within 250 ms (the client's first backoff).
					await waitFor(() => Date.now() - errorAt >= noRetryMs, "the no-retry window", noRetryMs + 1_000);
					return [name, { http, connect: { ...log.snapshot(), status: conn.connStatus, getParamsCalls: calls() } }];
				} finally {
					await disposeQuietly(conn);
				}
			}),
		);
		return { cases: Object.fromEntries(cases) };
	},

	// connect() with getParams fetching a JWT that expires a few seconds later: the gateway closes
	// the socket at expiry with ws.going_away; the client reconnects with a fresh token.
	async expiry() {
		const tokenURL = env("TOKEN_URL");
		const tokens = [];
		const conn = client.counter
			.getOrCreate(key, {
				getParams: async () => {
					const { token, exp } = await fetchToken(tokenURL);
					tokens.push({ exp, fetchedAt: Date.now() });
					return { authToken: token, token: `tok-${tokens.length}` };
				},
			})
			.connect();
		const log = track(conn);
		try {
			await withTimeout(conn.ready, "conn.ready");
			const before = await withTimeout(conn.whoami(), "whoami before expiry");
			const left = (at) => log.statuses.some((s) => s.at >= at && s.status !== "connected");
			const connectedAt = Date.now();
			// Bound: the first token's lifetime plus reconnect time.
			const bound = Math.max(0, tokens[0].exp - Date.now()) + reconnectMs;
			await waitFor(
				() => tokens.length >= 2 && left(connectedAt) && conn.connStatus === "connected",
				"close at expiry and reconnect",
				bound,
			);
			const after = await withTimeout(conn.whoami(), "whoami after reconnect");
			return { before, after, tokens, ...log.snapshot(), getParamsCalls: tokens.length };
		} catch (e) {
			return { error: describeError(e), tokens, ...log.snapshot() };
		} finally {
			await disposeQuietly(conn);
		}
	},
};

await runScenario(scenarios);
