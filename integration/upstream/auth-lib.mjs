// Helpers shared by the auth-*.mjs and params-*.mjs scripts of the authentication and
// server-side params end-to-end tests (integration/auth_test.go, integration/params_test.go).
//
// Each script prints exactly one JSON line, its result, as the LAST line of stdout (RivetKit's
// logger is sent to stderr, but the Go side parses the last line anyway), bounds every wait, and
// ends with process.exit. A failure is reported in the result as {"error": "..."}, never as a
// crash, so the Go test can quote it.
import { ActorError } from "rivetkit/client";

// stdout carries only the result line: the rivetkit logger writes to process.stdout.
const writeResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

/** Bound of one wait (env TIMEOUT_MS, default 25 s: engine 2.3.19 can take longer than its own 10 s
 * route timeout to start a new actor under load). */
export const timeoutMs = Number(process.env.TIMEOUT_MS || 25_000);

export const json = (v) => JSON.stringify(v);

export const diag = (...args) => console.error(`[${process.argv[1]?.split("/").pop()}]`, ...args);

/** Returns the env variable name, or fails the run when it is unset. */
export function env(name) {
	const v = process.env[name];
	if (v === undefined || v === "") {
		throw new Error(`${name} is required`);
	}
	return v;
}

/** Rejects with "timeout: what" unless p settles within ms. */
export function withTimeout(p, what, ms = timeoutMs) {
	let timer;
	const t = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(`timeout after ${ms}ms: ${what}`)), ms);
	});
	return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Resolves once cond() holds, polling every 20 ms; rejects after ms. */
export async function waitFor(cond, what, ms = timeoutMs) {
	const until = Date.now() + ms;
	while (!cond()) {
		if (Date.now() > until) throw new Error(`timeout after ${ms}ms waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 20));
	}
}

/** The parts of an error worth reporting. */
export function describeError(e) {
	if (ActorError.isActorError(e)) {
		return { group: e.group, code: e.code, message: e.message, metadata: e.metadata ?? null, rayId: e.rayId ?? null };
	}
	return { message: String(e?.message ?? e) };
}

/** Awaits p and returns the error it rejects with (described), or {success: value}. */
export async function errorOf(p, what) {
	try {
		return { success: await withTimeout(p, what) };
	} catch (e) {
		return describeError(e);
	}
}

/** Fetches a fresh JWT from the test's token endpoint: {token, exp (ms)}. */
export async function fetchToken(url) {
	const res = await withTimeout(fetch(url), `GET ${url}`);
	if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
	return await res.json();
}

/**
 * Records what a connection goes through: statuses and onError errors, each with the time
 * (ms since the epoch) it happened. snapshot() copies both, e.g. before dispose() adds "idle".
 */
export function track(conn) {
	const log = { statuses: [], errors: [] };
	conn.onStatusChange((s) => log.statuses.push({ status: s, at: Date.now() }));
	conn.onError((e) => log.errors.push({ error: `${e.group}.${e.code}`, at: Date.now() }));
	log.snapshot = () => ({ statuses: [...log.statuses], errors: [...log.errors] });
	return log;
}

/**
 * Connects open({getParams}) (a function returning a handle, e.g. (o) => client.counter.getOrCreate(key, o))
 * with a getParams that answers params and counts its calls, and tracks it. Returns
 * {conn, log, calls()}: a test reads calls() to tell whether the client retried.
 */
export function connectCounting(open, params) {
	let calls = 0;
	const conn = open({
		getParams: async () => {
			calls++;
			return params;
		},
	}).connect();
	conn.ready.catch(() => {});
	return { conn, log: track(conn), calls: () => calls };
}

/** Disposes conn, bounded, ignoring errors (the result is already decided). */
export async function disposeQuietly(conn) {
	await withTimeout(conn.dispose(), "dispose", 5_000).catch((e) => diag("dispose:", e.message));
}

/**
 * Runs main, prints its result (or {error}) as the last stdout line and exits 0. The whole run
 * is bounded by RUN_TIMEOUT_MS (default 60 s), below the Go side's bound.
 */
export async function run(main) {
	const runTimeoutMs = Number(process.env.RUN_TIMEOUT_MS || 60_000);
	const timer = setTimeout(() => {
		writeResult(`${json({ error: `did not finish within ${runTimeoutMs}ms` })}\n`);
		process.exit(3);
	}, runTimeoutMs);
	let out;
	try {
		out = await main();
	} catch (e) {
		diag(e?.stack ?? e);
		out = { error: describeError(e) };
	}
	clearTimeout(timer);
	writeResult(`${json(out)}\n`);
	process.exit(0);
}

// reconnectMs bounds a reconnect after a token expires (env RECONNECT_MS).
export const reconnectMs = Number(process.env.RECONNECT_MS || 10_000);

// runScenario runs scenarios[SCENARIO] through run.
export async function runScenario(scenarios) {
	await run(async () => {
		const scenario = scenarios[env("SCENARIO")];
		if (!scenario) throw new Error(`unknown SCENARIO; known: ${Object.keys(scenarios).join(", ")}`);
		return await scenario();
	});
}
