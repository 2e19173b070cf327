// End-to-end checks with the real RivetKit 2.3.19 JS client against an engine endpoint, either the
// engine itself or rivet-gateway in front of it. Run by the Go harness (integration/harness
// RunChecks), or by hand:
//
//   RIVET_ENDPOINT_URL=http://127.0.0.1:7700 ENC=json CHECKS=stateless-action,raw-fetch node checks.mjs
//
// Output (stdout): one JSON line per check, {"check":name,"ok":bool,"detail":...}, then
// "N passed, N failed". Exit status 0 only if every selected check passed. Diagnostics go to
// stderr. Every wait is bounded.
//
// Environment:
//   RIVET_ENDPOINT_URL  endpoint the client talks to (required)
//   ENC                 client encoding: bare (client default) | json | cbor
//   CHECKS              comma list of checks (default: every check in DEFAULT_CHECKS)
//   KEY                 actor key (default: unique per run, so each run gets a fresh actor)
//   PARAMS_JSON         static conn params of the handle (default {"token":"static-tok"});
//                       empty string = no params at all
//   GETPARAMS_JSON      if set, the value getParams returns in whoami-conn and
//                       connect-error-expected (otherwise those use the static params)
//   HEADERS_JSON        extra headers for createClient({headers}) (HTTP requests only: the
//                       client cannot set headers on WebSockets)
//   EXPECT_ERROR        group.code expected by action-error-expected / connect-error-expected
//   ACTION, ACTION_ARGS_JSON  action called by action-error-expected (default whoami, [])
//   TIMEOUT_MS          bound of each single wait (default 25000: engine 2.3.19 can take longer than
//                       its own 10 s route timeout to start a new actor under load)
//   RUN_TIMEOUT_MS      bound of the whole run (default 85000, below the Go harness's 90 s)
//   RIVET_TOKEN, RIVET_NAMESPACE  read by createClient itself (namespace token / namespace)
import { ActorError, createClient } from "rivetkit/client";

// stdout carries only the result lines: everything else that writes to it (the rivetkit logger
// uses process.stdout.write) is sent to stderr.
const writeResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
/** Prints one line to the real stdout. */
const emit = (line) => writeResult(`${line}\n`);

/** Checks run when CHECKS is unset or "all". */
const DEFAULT_CHECKS = [
	"stateless-action",
	"action-error",
	"connect-event",
	"raw-fetch",
	"raw-websocket",
	"connect-rejected",
	"getparams-retry",
	"queue",
	"out-of-order",
	"whoami-http",
	"whoami-conn",
];

const endpoint = process.env.RIVET_ENDPOINT_URL;
if (!endpoint) {
	console.error("checks.mjs: RIVET_ENDPOINT_URL is required");
	process.exit(2);
}
const encoding = process.env.ENC || undefined;
const timeoutMs = Number(process.env.TIMEOUT_MS || 25_000);
const runTimeoutMs = Number(process.env.RUN_TIMEOUT_MS || 85_000);
const key = [process.env.KEY || `checks-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`];
const params = parseJSONEnv("PARAMS_JSON", { token: "static-tok" });
const hasGetParams = process.env.GETPARAMS_JSON !== undefined;
const getParamsValue = parseJSONEnv("GETPARAMS_JSON", undefined);
const headers = parseJSONEnv("HEADERS_JSON", undefined);
const expectError = process.env.EXPECT_ERROR;
const action = process.env.ACTION || "whoami";
const actionArgs = parseJSONEnv("ACTION_ARGS_JSON", []);

/** Parses env var name as JSON; unset = fallback, empty string = undefined. */
function parseJSONEnv(name, fallback) {
	const raw = process.env[name];
	if (raw === undefined) return fallback;
	if (raw === "") return undefined;
	try {
		return JSON.parse(raw);
	} catch (err) {
		console.error(`checks.mjs: ${name} is not JSON: ${err.message}`);
		process.exit(2);
	}
}

const diag = (...args) => console.error("[checks]", ...args);

/** Rejects with "timeout: what" unless p settles within ms. */
function withTimeout(p, what, ms = timeoutMs) {
	let timer;
	const t = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(`timeout after ${ms}ms: ${what}`)), ms);
	});
	return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Throws unless cond holds; msg should read "got X, want Y". */
function assert(cond, msg) {
	if (!cond) throw new Error(msg);
}

const json = (v) => JSON.stringify(v);
const deepEqual = (a, b) => json(a) === json(b);

/** The parts of an error worth reporting. */
function describeError(e) {
	if (ActorError.isActorError(e)) {
		return { group: e.group, code: e.code, message: e.message, metadata: e.metadata ?? null };
	}
	return { message: String(e?.message ?? e) };
}

/**
 * Waits for the first onError of conn for which pred holds; returns it and all errors seen.
 * Fails at once if the connection gets established instead.
 */
function nextError(conn, pred, what) {
	const seen = [];
	let unsubscribe;
	const p = new Promise((resolve) => {
		unsubscribe = conn.onError((e) => {
			seen.push(describeError(e));
			if (pred(e)) resolve(e);
		});
	});
	const connected = conn.ready.then(
		() => Promise.reject(new Error(`connected (status ${conn.connStatus}), want ${what}`)),
		() => new Promise(() => {}), // a failed open is reported through onError
	);
	return withTimeout(Promise.race([p, connected]), what)
		.then((err) => ({ err, seen }))
		.catch((e) => {
			e.message += `; errors seen: ${json(seen)}`;
			throw e;
		})
		.finally(() => unsubscribe());
}

/** Disposes conn, bounded, ignoring errors (the check result is already decided). */
async function disposeQuietly(conn) {
	await withTimeout(conn.dispose(), "dispose").catch((e) => diag("dispose:", e.message));
}

/** Params for connections of the parameterizable checks: getParams if GETPARAMS_JSON is set. */
function connOptions() {
	return hasGetParams ? { getParams: async () => getParamsValue } : { params };
}

const client = createClient({
	endpoint,
	...(encoding ? { encoding } : {}),
	...(headers ? { headers } : {}),
});
const handle = client.counter.getOrCreate(key, { params });

/** Check implementations: each returns its detail or throws. */
const checks = {
	// Stateless HTTP action: static params arrive in c.conn.params (header x-rivet-conn-params).
	"stateless-action": async () => {
		const before = await withTimeout(handle.getCount(), "getCount");
		const count = await withTimeout(handle.increment(5), "increment");
		assert(count === before + 5, `increment(5) after ${before}: got ${count}, want ${before + 5}`);
		const who = await withTimeout(handle.whoami(), "whoami");
		assert(deepEqual(who.params, params ?? null), `whoami params: got ${json(who.params)}, want ${json(params)}`);
		return { count, params: who.params };
	},

	// A UserError thrown by an action surfaces as ActorError user.custom_fail with its metadata.
	"action-error": async () => {
		const err = await withTimeout(handle.fail().then(() => null, (e) => e), "fail");
		assert(err !== null, "fail(): got success, want an error");
		const d = describeError(err);
		assert(`${d.group}.${d.code}` === "user.custom_fail", `fail(): got ${json(d)}, want user.custom_fail`);
		assert(deepEqual(d.metadata, { a: 1 }), `fail() metadata: got ${json(d.metadata)}, want {"a":1}`);
		return d;
	},

	// connect() with getParams: the actor sees dyn-tok-1, and an event matches the action result.
	"connect-event": async () => {
		let n = 0;
		const conn = client.counter.getOrCreate(key, { getParams: async () => ({ token: `dyn-tok-${++n}` }) }).connect();
		try {
			const event = new Promise((resolve) => conn.on("newCount", resolve));
			await withTimeout(conn.ready, "conn.ready");
			const who = await withTimeout(conn.whoami(), "whoami");
			assert(who.params?.token === "dyn-tok-1", `whoami params: got ${json(who.params)}, want {"token":"dyn-tok-1"}`);
			const count = await withTimeout(conn.increment(2), "increment");
			const got = await withTimeout(event, "event newCount");
			assert(got === count, `event newCount: got ${got}, want ${count}`);
			return { params: who.params, count, event: got, getParamsCalls: n };
		} finally {
			await disposeQuietly(conn);
		}
	},

	// Raw HTTP to onRequest. GET only: engine 2.3.19 sometimes truncates raw POST bodies.
	"raw-fetch": async () => {
		const res = await withTimeout(handle.fetch("/hello/world?x=1"), "fetch");
		const body = await withTimeout(res.json(), "fetch body");
		assert(res.status === 200, `status: got ${res.status}, want 200`);
		assert(body.method === "GET", `method: got ${body.method}, want GET`);
		assert(body.path === "/hello/world", `path: got ${body.path}, want /hello/world`);
		assert(new URLSearchParams(body.search).get("x") === "1", `search: got ${body.search}, want x=1`);
		return { status: res.status, path: body.path, search: body.search, connParams: body.headers["x-rivet-conn-params"] ?? null };
	},

	// Raw WebSocket to onWebSocket: greeting, then echo.
	"raw-websocket": async () => {
		const ws = await withTimeout(handle.webSocket("/raw/path?y=2"), "webSocket open");
		const msgs = [];
		try {
			await withTimeout(
				new Promise((resolve, reject) => {
					ws.addEventListener("message", (ev) => {
						msgs.push(String(ev.data));
						if (msgs.length === 1) ws.send("ping");
						else resolve();
					});
					ws.addEventListener("error", () => reject(new Error("websocket error")));
					ws.addEventListener("close", (ev) => reject(new Error(`websocket closed ${ev.code} ${ev.reason}`)));
				}),
				"raw websocket messages",
			);
		} finally {
			ws.close();
		}
		assert(JSON.parse(msgs[0]).hello === "raw", `first message: got ${msgs[0]}, want {"hello":"raw",...}`);
		assert(msgs[1] === "echo:ping", `second message: got ${msgs[1]}, want echo:ping`);
		return { messages: msgs };
	},

	// onBeforeConnect rejects a WebSocket connect without token: user.unauthorized, no retry.
	"connect-rejected": async () => {
		const conn = client.counter.getOrCreate(key, { params: { notoken: true } }).connect();
		try {
			const { err, seen } = await nextError(conn, () => true, "an error");
			const d = describeError(err);
			assert(`${d.group}.${d.code}` === "user.unauthorized", `error: got ${json(d)}, want user.unauthorized`);
			return { ...d, seen, connStatus: conn.connStatus };
		} finally {
			await disposeQuietly(conn);
		}
	},

	// getParams throwing twice: two client.get_params_failed errors, then the third try connects.
	"getparams-retry": async () => {
		let tries = 0;
		const conn = client.counter
			.getOrCreate(key, {
				getParams: async () => {
					if (++tries < 3) throw new Error(`no token yet ${tries}`);
					return { token: "late" };
				},
			})
			.connect();
		const errs = [];
		conn.onError((e) => errs.push(`${e.group}.${e.code}`));
		try {
			await withTimeout(conn.ready, "conn.ready");
			const who = await withTimeout(conn.whoami(), "whoami");
			const want = ["client.get_params_failed", "client.get_params_failed"];
			assert(deepEqual(errs, want), `errors: got ${json(errs)}, want ${json(want)}`);
			assert(who.params?.token === "late", `whoami params: got ${json(who.params)}, want {"token":"late"}`);
			return { errors: errs, tries, params: who.params };
		} finally {
			await disposeQuietly(conn);
		}
	},

	// Queue send with wait: the actor's run loop completes it with {echo, count}.
	queue: async () => {
		const body = { hello: "queue", n: 7 };
		const res = await withTimeout(handle.send("jobs", body, { wait: true, timeout: timeoutMs }), "queue send");
		assert(res?.status === "completed", `status: got ${json(res)}, want completed`);
		assert(deepEqual(res.response?.echo, body), `echo: got ${json(res.response?.echo)}, want ${json(body)}`);
		return res;
	},

	// Two actions in flight on one connection: the fast reply overtakes the slow one.
	"out-of-order": async () => {
		const conn = handle.connect();
		try {
			await withTimeout(conn.ready, "conn.ready");
			const order = [];
			const slow = conn.slow(500).then(() => order.push("slow"));
			const fast = conn.slow(0).then(() => order.push("fast"));
			await withTimeout(Promise.all([slow, fast]), "slow actions");
			assert(deepEqual(order, ["fast", "slow"]), `reply order: got ${json(order)}, want ["fast","slow"]`);
			return { order };
		} finally {
			await disposeQuietly(conn);
		}
	},

	// The params the actor saw for a stateless HTTP action (for Go assertions).
	"whoami-http": async () => await withTimeout(handle.whoami(), "whoami"),

	// The params the actor saw for a WebSocket connection (for Go assertions).
	"whoami-conn": async () => {
		const conn = client.counter.getOrCreate(key, connOptions()).connect();
		conn.ready.catch(() => {});
		const errs = [];
		conn.onError((e) => errs.push(describeError(e)));
		try {
			await withTimeout(conn.ready, "conn.ready").catch((e) => {
				e.message += `; errors seen: ${json(errs)}`;
				throw e;
			});
			return await withTimeout(conn.whoami(), "whoami");
		} finally {
			await disposeQuietly(conn);
		}
	},

	// Calls ACTION over HTTP and expects ActorError EXPECT_ERROR (e.g. auth.unauthorized).
	"action-error-expected": async () => {
		assert(expectError, "EXPECT_ERROR is not set");
		const err = await withTimeout(
			handle.action({ name: action, args: actionArgs }).then(
				(out) => {
					throw new Error(`${action}: got success ${json(out)}, want ${expectError}`);
				},
				(e) => e,
			),
			action,
		);
		const d = describeError(err);
		assert(`${d.group}.${d.code}` === expectError, `${action}: got ${json(d)}, want ${expectError}`);
		return d;
	},

	// Connects and expects onError EXPECT_ERROR (e.g. auth.unauthorized).
	"connect-error-expected": async () => {
		assert(expectError, "EXPECT_ERROR is not set");
		const conn = client.counter.getOrCreate(key, connOptions()).connect();
		try {
			const { err, seen } = await nextError(conn, (e) => `${e.group}.${e.code}` === expectError, `error ${expectError}`);
			return { ...describeError(err), seen, connStatus: conn.connStatus };
		} finally {
			await disposeQuietly(conn);
		}
	},
};

const selected =
	!process.env.CHECKS || process.env.CHECKS === "all"
		? DEFAULT_CHECKS
		: process.env.CHECKS.split(",").map((s) => s.trim()).filter(Boolean);

// Whole-run bound on top of the per-wait bounds: the client retries some things forever.
const runTimer = setTimeout(() => {
	emit(json({ check: "run", ok: false, detail: `checks.mjs did not finish within ${runTimeoutMs}ms` }));
	process.exit(3);
}, runTimeoutMs);

diag(`endpoint=${endpoint} encoding=${encoding ?? "bare"} key=${key[0]} checks=${selected.join(",")}`);
let passed = 0;
let failed = 0;
for (const name of selected) {
	const fn = checks[name];
	const t0 = Date.now();
	let line;
	if (!fn) {
		line = { check: name, ok: false, detail: `unknown check; known: ${Object.keys(checks).join(", ")}` };
	} else {
		try {
			line = { check: name, ok: true, detail: (await fn()) ?? null };
		} catch (err) {
			line = { check: name, ok: false, detail: describeError(err) };
			diag(`${name}:`, err?.stack ?? err);
		}
	}
	line.ok ? passed++ : failed++;
	emit(json(line));
	diag(`${line.ok ? "ok  " : "FAIL"} ${name} (${Date.now() - t0}ms)`);
}
await withTimeout(client.dispose(), "client.dispose").catch((e) => diag("client.dispose:", e.message));
clearTimeout(runTimer);
emit(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
