// The real RivetKit JS client through rivet-gateway in front of a hosted engine over TLS
// (integration/hosted_test.go): every client route over https and wss, by key and by id.
// Prints one JSON line (see auth-lib.mjs): what each route returned and what the actor saw.
//
// The client holds a namespace token of its own (RIVET_TOKEN, read by createClient), as a client
// configured for the engine would: it sends it in every carrier it uses (Authorization on
// /actors and /metadata, x-rivet-token on HTTP gateway requests, "@token" in id paths, rvt-token
// in key queries; no rivet_token. subprotocol on these routes, measured), and the gateway must
// replace it with its own.
// The client authenticates to the gateway with an API key: X-API-Key on HTTP (createClient
// headers), params.authToken on WebSockets (which cannot carry headers).
//
// Environment:
//   RIVET_ENDPOINT_URL  the gateway, https://...
//   NODE_EXTRA_CA_CERTS the test CA (read by node at start: fetch and ws trust it)
//   RIVET_TOKEN         the client's own (wrong) namespace token
//   API_KEY             the gateway API key
//   KEY                 actor key prefix (unique per run)
import { createClient } from "rivetkit/client";
import { disposeQuietly, env, run, withTimeout } from "./auth-lib.mjs";

const apiKey = env("API_KEY");
const prefix = env("KEY");
const client = createClient({
	endpoint: env("RIVET_ENDPOINT_URL"),
	headers: { "X-API-Key": apiKey },
});
const params = { authToken: apiKey };

/** Raw fetch: the path and the headers the actor's onRequest saw (x-rivet-token among them?). */
async function rawFetch(handle, what) {
	const res = await withTimeout(handle.fetch("/hello/world?x=1"), `${what} fetch`);
	const body = await withTimeout(res.json(), `${what} fetch body`);
	if (res.status !== 200 || body.path !== "/hello/world") {
		throw new Error(`${what} fetch: got ${res.status} ${JSON.stringify(body)}, want 200 /hello/world`);
	}
	return { status: res.status, path: body.path, actorSawHeaders: Object.keys(body.headers).sort(), actorSawToken: body.headers["x-rivet-token"] ?? null };
}

/** Raw WebSocket: greeting, then echo. */
async function rawWebSocket(handle, what) {
	const ws = await withTimeout(handle.webSocket("/raw/path?y=2"), `${what} webSocket open`);
	const msgs = [];
	try {
		await withTimeout(
			new Promise((resolve, reject) => {
				ws.addEventListener("message", (ev) => {
					msgs.push(String(ev.data));
					if (msgs.length === 1) ws.send("ping");
					else resolve();
				});
				ws.addEventListener("error", () => reject(new Error(`${what}: websocket error`)));
				ws.addEventListener("close", (ev) => reject(new Error(`${what}: websocket closed ${ev.code} ${ev.reason}`)));
			}),
			`${what} raw websocket messages`,
		);
	} finally {
		ws.close();
	}
	if (JSON.parse(msgs[0]).hello !== "raw" || msgs[1] !== "echo:ping") {
		throw new Error(`${what} raw websocket: got ${JSON.stringify(msgs)}, want greeting then echo:ping`);
	}
	return msgs;
}

/** connect() with an event: increment(2) over the connection, newCount must match it. */
async function connectEvent(handle, what) {
	const conn = handle.connect();
	try {
		const event = new Promise((resolve) => conn.on("newCount", resolve));
		await withTimeout(conn.ready, `${what} conn.ready`);
		const who = await withTimeout(conn.whoami(), `${what} whoami`);
		const count = await withTimeout(conn.increment(2), `${what} increment`);
		const got = await withTimeout(event, `${what} event newCount`);
		if (got !== count) throw new Error(`${what} event newCount: got ${got}, want ${count}`);
		return { count, event: got, params: who.params };
	} finally {
		await disposeQuietly(conn);
	}
}

/** Queue send with wait: completed with the body echoed. */
async function queueSend(handle, what) {
	const body = { hello: "queue", via: what };
	const res = await withTimeout(handle.send("jobs", body, { wait: true, timeout: 20_000 }), `${what} queue send`);
	if (res?.status !== "completed" || JSON.stringify(res.response?.echo) !== JSON.stringify(body)) {
		throw new Error(`${what} queue: got ${JSON.stringify(res)}, want completed with the body echoed`);
	}
	return res.status;
}

run(async () => {
	const out = {};
	// By key: getOrCreate (rvt-method=getOrCreate), then get (rvt-method=get).
	const byKey = client.counter.getOrCreate([`${prefix}-key`], { params });
	out.actionByKey = await withTimeout(byKey.increment(5), "increment by key");
	out.getByKey = await withTimeout(client.counter.get([`${prefix}-key`], { params }).getCount(), "getCount by get()");
	out.whoamiHTTP = (await withTimeout(byKey.whoami(), "whoami by key")).params;
	out.connectByKey = await connectEvent(byKey, "by key");
	out.fetchByKey = await rawFetch(byKey, "by key");
	out.webSocketByKey = await rawWebSocket(byKey, "by key");
	out.queueByKey = await queueSend(byKey, "by key");

	// By id: create() (POST /actors), then the handle it returns and getForId() address the
	// actor by id (/gateway/<id>/...).
	const created = await withTimeout(client.counter.create([`${prefix}-id`], { params }), "create");
	const id = await withTimeout(created.resolve(), "resolve");
	out.createdID = id;
	out.actionByID = await withTimeout(created.increment(3), "increment by id");
	const byID = client.counter.getForId(id, { params });
	out.getForID = await withTimeout(byID.getCount(), "getCount by getForId");
	out.connectByID = await connectEvent(byID, "by id");
	out.fetchByID = await rawFetch(byID, "by id");
	out.webSocketByID = await rawWebSocket(byID, "by id");
	out.queueByID = await queueSend(byID, "by id");

	await withTimeout(client.dispose(), "client.dispose").catch(() => {});
	return out;
});
