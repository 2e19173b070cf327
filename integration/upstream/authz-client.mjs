// The real RivetKit JS client as alice, a signed-in user, through rivet-gateway configured with
// the README's rules (a counter's key must start with the caller's sub). Driven by
// integration/authz_test.go; prints one JSON result line (see auth-lib.mjs).
//
// Her own counter works the way RivetKit addresses it after create() and getForId(): by id.
// Bob's counter, whose id she knows, does not: not by id, not by key, not over connect().
//
// Environment:
//   RIVET_ENDPOINT_URL  the gateway
//   TOKEN               alice's JWT (sent as params.authToken, the browser way)
//   BOB_ID              bob's actor id
//   NO_RETRY_MS         how long the refused connection is watched for retries (1000)
//   ENC                 client encoding (default bare)
import { createClient } from "rivetkit/client";
import { connectCounting, disposeQuietly, env, errorOf, runScenario, waitFor, withTimeout } from "./auth-lib.mjs";

// The management API calls (create(), resolve()) carry no connection params: a browser app
// authenticates them with a header of the client's config, and its WebSockets with the params.
const client = createClient({
	endpoint: env("RIVET_ENDPOINT_URL"),
	headers: { Authorization: `Bearer ${env("TOKEN")}` },
	...(process.env.ENC ? { encoding: process.env.ENC } : {}),
});

const scenarios = {
	async alice() {
		const params = { authToken: env("TOKEN") };
		const bobID = env("BOB_ID");
		const noRetryMs = Number(process.env.NO_RETRY_MS || 1_000);

		// create() then actions by id (the handle create() returns addresses the actor by id).
		const own = await withTimeout(client.counter.create(["alice", "by-id"], { params }), "create");
		const ownID = await withTimeout(own.resolve(), "resolve");
		const ownCount = await withTimeout(own.increment(3), "own increment by id");
		const again = await withTimeout(client.counter.getForId(ownID, { params }).getCount(), "own getCount by getForId");

		// Bob's counter, by id and by key, over HTTP and over connect().
		const bobByID = await errorOf(client.counter.getForId(bobID, { params }).increment(1000), "bob by id");
		const bobByKey = await errorOf(client.counter.get(["bob"], { params }).increment(1000), "bob by key");
		const bobResolve = await errorOf(client.counter.get(["bob"], { params }).resolve(), "resolve bob's id");
		const { conn, log, calls } = connectCounting((o) => client.counter.getForId(bobID, o), params);
		try {
			await waitFor(() => log.errors.length > 0 || conn.connStatus === "connected", "bob's connection: an error");
			const errorAt = Date.now();
			await waitFor(() => Date.now() - errorAt >= noRetryMs, "the no-retry window", noRetryMs + 1_000);
			return {
				ownID,
				ownCount,
				again,
				bobByID,
				bobByKey,
				bobResolve,
				bobConnect: { ...log.snapshot(), status: conn.connStatus, getParamsCalls: calls() },
			};
		} finally {
			await disposeQuietly(conn);
		}
	},
};

await runScenario(scenarios);
