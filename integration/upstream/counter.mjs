// The actor "counter" of the end-to-end tests, shared by the two ways the tests host it:
// server.mjs (an envoy process dialing the engine, scripts/start.sh) and serverless/worker.mjs
// (RivetKit's serverless handler(request) in workerd, scripts/start-serverless.sh). Both run
// exactly this definition, so every test reads the same actions, hooks and errors.
//
// Logging rule: connection params carry credentials, so only their KEYS are ever logged.
import { actor, queue, UserError } from "rivetkit";

/** Longest delay `slow(ms)` accepts, so a test cannot wedge an actor. */
const MAX_SLOW_MS = 10_000;

/** Describes params for the log without revealing their values. */
function paramKeys(params) {
	if (params === undefined) return "<undefined>";
	if (params === null || typeof params !== "object") return `<${params === null ? "null" : typeof params}>`;
	return `keys=[${Object.keys(params).join(",")}]`;
}

/** The JavaScript type of a value as the actor sees it, to check how values travel. */
function describe(v) {
	if (v === undefined) return "undefined";
	if (v === null) return "null";
	if (typeof v === "bigint") return `bigint:${v}`;
	if (v instanceof Uint8Array) return `Uint8Array:${[...v].join(",")}`;
	if (v instanceof ArrayBuffer) return `ArrayBuffer:${[...new Uint8Array(v)].join(",")}`;
	if (v instanceof Set) return `Set(${[...v].map(describe).join(",")})`;
	if (Array.isArray(v)) return `[${v.map(describe).join(",")}]`;
	if (typeof v === "object") return `{${Object.keys(v).sort().map((k) => `${k}:${describe(v[k])}`).join(",")}}`;
	return `${typeof v}:${v}`;
}

const log = (...args) => console.log(`[actor ${new Date().toISOString()}]`, ...args);

export const counter = actor({
	state: { count: 0 },

	// A queue the client can send to (`handle.send("jobs", body, {wait: true})`); the run loop
	// below answers every message with {echo, count}.
	queues: { jobs: queue() },

	// Auth hook: runs for WebSocket connects, stateless HTTP actions, queue sends, raw onRequest
	// and raw onWebSocket alike. Rejects with user.unauthorized when there is no token.
	onBeforeConnect: (c, params) => {
		log("onBeforeConnect", paramKeys(params));
		if (!params?.token) {
			throw new UserError("missing token", { code: "unauthorized" });
		}
	},

	// Records what every connection was made with, so tests can read it back via whoami.
	createConnState: (c, params) => ({ params: params ?? null, at: Date.now() }),

	// Raw HTTP: handle.fetch("/x?y") -> /gateway/<target>/request/x?y -> here with path "/x".
	onRequest: async (c, request) => {
		const url = new URL(request.url);
		const headers = {};
		request.headers.forEach((v, k) => {
			headers[k] = v;
		});
		log("onRequest", request.method, url.pathname);
		return Response.json({
			method: request.method,
			path: url.pathname,
			search: url.search,
			headers,
			count: c.state.count,
		});
	},

	// Raw WebSocket: handle.webSocket("/x") -> /gateway/<target>/websocket/x -> here.
	// Greets with {hello:"raw", count}, then echoes every text message as "echo:<msg>".
	onWebSocket: (c, ws) => {
		log("onWebSocket open");
		ws.send(JSON.stringify({ hello: "raw", count: c.state.count }));
		ws.addEventListener("message", (ev) => {
			ws.send(`echo:${typeof ev.data === "string" ? ev.data : "<binary>"}`);
		});
	},

	// Background loop answering queue messages until the actor shuts down.
	run: async (c) => {
		for await (const msg of c.queue.iter({ signal: c.abortSignal, completable: true })) {
			await msg.complete({ echo: msg.body, count: c.state.count });
		}
	},

	actions: {
		/** Adds amount (default 1), broadcasts event newCount with the new value and returns it. */
		increment: (c, amount = 1) => {
			c.state.count += amount;
			c.broadcast("newCount", c.state.count);
			return c.state.count;
		},
		getCount: (c) => c.state.count,
		/** Returns its arguments as they arrived and how the actor sees them: {args, types}. */
		echo: (c, ...args) => ({ args, types: args.map(describe) }),
		/** The JavaScript runtime serving the actor: "Cloudflare-Workers" in workerd, "node vX" in Node. */
		runtime: () => globalThis.navigator?.userAgent ?? `node ${globalThis.process?.version}`,
		/** Returns the params and conn state of the calling connection (ephemeral for HTTP). */
		whoami: (c) => ({ params: c.conn?.params ?? null, connState: c.conn?.state ?? null }),
		/** Always fails with user.custom_fail and metadata {a: 1}. */
		fail: () => {
			throw new UserError("boom", { code: "custom_fail", metadata: { a: 1 } });
		},
		/** Resolves with ms after ms milliseconds (capped at MAX_SLOW_MS): for out-of-order replies. */
		slow: async (c, ms = 0) => {
			const wait = Math.max(0, Math.min(Number(ms) || 0, MAX_SLOW_MS));
			await new Promise((resolve) => setTimeout(resolve, wait));
			return wait;
		},
	},
});
