// The actor "counter" (../counter.mjs) served the way a Cloudflare Worker serves RivetKit actors:
// RivetKit's serverless handler, registry.handler(request), under /api/rivet, with the
// WebAssembly core (@rivetkit/rivetkit-wasm; the napi core cannot load outside Node).
//
// The engine starts actors by calling POST /api/rivet/start (a long-lived request during which
// the runner dials the engine's envoy WebSocket) and reads GET /api/rivet/metadata; clients never
// come here: they talk to the engine's /gateway/... routes, through rivet-gateway. build.mjs
// bundles this file for workerd; scripts/start-serverless.sh runs it there and registers the
// serverless runner pool with the engine.
//
// Bindings (workerd.capnp): RIVET_ENDPOINT, the engine this runner dials (it must equal the
// engine's public URL: the engine names itself in every start request, and RivetKit refuses a
// start request from another endpoint with config.endpoint_mismatch); RIVET_PUBLIC_ENDPOINT, the
// gateway in front of the engine: the worker's /api/rivet/metadata answers it as clientEndpoint,
// so a client given the worker's URL goes to the gateway, never to the engine around it. No
// publicToken: the worker hands clients no token (they authenticate to the gateway, which holds
// the namespace token). WORKER_SECRET: the engine's requests carry it in x-worker-secret (the
// runner pool's headers); everything but GET /api/rivet/metadata is refused without it, since
// /api/rivet/start runs actors for whoever calls it.
import * as wasmBindings from "@rivetkit/rivetkit-wasm";
import { setup } from "rivetkit";
import { counter } from "../counter.mjs";
// A compiled WebAssembly.Module, listed in workerd.capnp and handed to the bindings' init. Their
// default init cannot work in a Worker: it resolves the .wasm against import.meta.url ("TypeError:
// Invalid URL string." in workerd) to fetch it, and compiling wasm from bytes is refused anyway
// ("WebAssembly.compile(): Wasm code generation disallowed by embedder").
import wasmModule from "./rivetkit_wasm_bg.wasm";

const BASE_PATH = "/api/rivet";
const SECRET_HEADER = "x-worker-secret";

/** The registry, built on the first request (bindings are only known then). */
let registry;

function registryFor(env) {
	registry ??= setup({
		use: { counter },
		runtime: "wasm",
		wasm: { bindings: wasmBindings, initInput: { module_or_path: wasmModule } },
		endpoint: env.RIVET_ENDPOINT,
		namespace: "default",
		serverless: { publicEndpoint: env.RIVET_PUBLIC_ENDPOINT },
		noWelcome: true,
	});
	return registry;
}

export default {
	async fetch(request, env) {
		const { pathname } = new URL(request.url);
		if (pathname !== BASE_PATH && !pathname.startsWith(`${BASE_PATH}/`)) {
			return new Response("not found\n", { status: 404 });
		}
		// The metadata route tells clients where to go (publicEndpoint) and nothing else; every
		// other route is the engine's alone.
		const metadata = request.method === "GET" && pathname === `${BASE_PATH}/metadata`;
		if (!metadata && !(env.WORKER_SECRET && (await sameSecret(request.headers.get(SECRET_HEADER), env.WORKER_SECRET)))) {
			return new Response("forbidden\n", { status: 403 });
		}
		return registryFor(env).handler(request);
	},
};

/** Compares a presented secret with the configured one in constant time (as digests). */
async function sameSecret(presented, secret) {
	if (presented === null) return false;
	const enc = new TextEncoder();
	const [a, b] = await Promise.all([enc.encode(presented), enc.encode(secret)].map((d) => crypto.subtle.digest("SHA-256", d)));
	return crypto.subtle.timingSafeEqual(a, b);
}
