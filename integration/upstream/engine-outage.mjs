// A running RivetKit client while the engine behind the gateway goes away and
// comes back. Coordinated by files in OUTAGE_DIR: this script writes "ready"
// once connected, waits for "down" (the test stopped the engine), records
// what the client sees, writes "seen", waits for "up", and checks that it
// works again. Prints one JSON line with what it observed.
import { createClient } from "rivetkit/client";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.OUTAGE_DIR;
const client = createClient({ endpoint: process.env.RIVET_ENDPOINT_URL, encoding: process.env.ENC || "json" });
const key = [`outage-${Date.now()}`];
const h = client.counter.getOrCreate(key, { params: { token: "t" } });
const waitFile = async (name, ms) => {
	const until = Date.now() + ms;
	while (!existsSync(join(dir, name))) {
		if (Date.now() > until) throw new Error(`timeout waiting for ${name}`);
		await new Promise((r) => setTimeout(r, 50));
	}
};
const within = (p, ms, what) =>
	Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);
const step = (s) => console.error(`[outage] ${s}`);
const out = { newConnection: false, before: null, duringAction: null, connErrors: [], statuses: [], after: null, reconnected: false };
try {
	out.before = await within(h.increment(1), 15_000, "increment before");
	step("action ok");
	const conn = h.connect();
	conn.onError((e) => out.connErrors.push(`${e.group}.${e.code}`));
	conn.onStatusChange((s) => out.statuses.push(s));
	await within(conn.ready, 15_000, "conn.ready");
	step("connected");
	writeFileSync(join(dir, "ready"), "");
	await waitFile("down", 30_000);
	try {
		await within(h.getCount(), 15_000, "getCount during outage");
		out.duringAction = "ok?!";
	} catch (e) {
		out.duringAction = `${e.group}.${e.code}`;
	}
	writeFileSync(join(dir, "seen"), "");
	await waitFile("up", 30_000);
	step("engine back");
	out.after = await within(h.increment(1), 20_000, "increment after");
	step("action after ok");
	// The connection reconnects by itself once the engine is back.
	const until = Date.now() + 20_000;
	while (Date.now() < until) {
		try {
			await within(conn.getCount(), 2_000, "conn.getCount");
			out.reconnected = true;
			break;
		} catch {
			await new Promise((r) => setTimeout(r, 200));
		}
	}
	await within(conn.dispose(), 5_000, "dispose").catch(() => {});
	// A new connection works whatever the old one did: a freshly restarted
	// engine may briefly refuse with a terminal actor.* error before the
	// actor server has registered again.
	const conn2 = h.connect();
	await within(conn2.ready, 20_000, "new connection");
	out.newConnection = (await within(conn2.getCount(), 5_000, "conn2.getCount")) >= 1;
	await within(conn2.dispose(), 5_000, "dispose").catch(() => {});
} catch (e) {
	out.error = String(e?.stack ?? e);
}
console.log(JSON.stringify(out));
process.exit(0);
