// N real RivetKit JS connections through rivet-gateway while the engine behind it is killed and
// restarted (integration/fault_test.go). Each connection uses an actor key of its own (concurrent
// first calls for one key make engine 2.3.19 answer actor.destroyed_during_creation) and sends no
// params: the gateway injects them from its params service on every (re)connection.
//
// Coordinated by files in FAULT_DIR: this script writes "ready" once every connection is up,
// waits for "up" (the test restarted the engine), then waits until every connection has dropped
// and come back (bounded by RECONNECT_MS) and asks each for whoami again. Prints one JSON line
// (see auth-lib.mjs): {conns: [{key, before, after, reconnectedAfterMs, statuses, errors}]}.
//
// Environment: RIVET_ENDPOINT_URL, FAULT_DIR, KEY (prefix), CONNS (default 5), RECONNECT_MS
// (default 20000), ENC (default json).
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "rivetkit/client";
import { disposeQuietly, env, run, track, waitFor, withTimeout } from "./auth-lib.mjs";

const dir = env("FAULT_DIR");
const n = Number(process.env.CONNS || 5);
const reconnectMs = Number(process.env.RECONNECT_MS || 20_000);
const client = createClient({ endpoint: env("RIVET_ENDPOINT_URL"), encoding: process.env.ENC || "json" });

await run(async () => {
	const conns = [];
	try {
		for (let i = 0; i < n; i++) {
			const key = `${env("KEY")}-${i}`;
			const conn = client.counter.getOrCreate([key]).connect();
			conns.push({ key, conn, log: track(conn) });
		}
		for (const c of conns) {
			await withTimeout(c.conn.ready, `${c.key}: conn.ready`);
			c.before = await withTimeout(c.conn.whoami(), `${c.key}: whoami`);
		}
		const readyAt = Date.now();
		writeFileSync(join(dir, "ready"), "");
		await waitFor(() => existsSync(join(dir, "up")), "the test to restart the engine", 60_000);
		const upAt = Date.now();
		const dropped = (c) => c.log.statuses.some((s) => s.at >= readyAt && s.status !== "connected");
		await waitFor(
			() => conns.every((c) => dropped(c) && c.conn.connStatus === "connected"),
			"every connection to drop and come back",
			reconnectMs,
		).catch((e) => {
			e.message += `; statuses: ${JSON.stringify(conns.map((c) => [c.key, c.conn.connStatus, c.log.snapshot()]))}`;
			throw e;
		});
		const out = [];
		for (const c of conns) {
			const back = c.log.statuses.findLast((s) => s.status === "connected");
			out.push({
				key: c.key,
				before: c.before,
				after: await withTimeout(c.conn.whoami(), `${c.key}: whoami after the restart`),
				reconnectedAfterMs: back ? back.at - upAt : null,
				...c.log.snapshot(),
			});
		}
		return { conns: out };
	} finally {
		for (const c of conns) await disposeQuietly(c.conn);
	}
});
