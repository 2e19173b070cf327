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
// start request from another endpoint with config.endpoint_mismatch).
import * as wasmBindings from "@rivetkit/rivetkit-wasm";
import { setup } from "rivetkit";
import { counter } from "../counter.mjs";
// A compiled WebAssembly.Module, listed in workerd.capnp and handed to the bindings' init. Their
// default init cannot work in a Worker: it resolves the .wasm against import.meta.url ("TypeError:
// Invalid URL string." in workerd) to fetch it, and compiling wasm from bytes is refused anyway
// ("WebAssembly.compile(): Wasm code generation disallowed by embedder").
import wasmModule from "./rivetkit_wasm_bg.wasm";

const BASE_PATH = "/api/rivet";

/** The registry, built on the first request (bindings are only known then). */
let registry;

function registryFor(env) {
	registry ??= setup({
		use: { counter },
		runtime: "wasm",
		wasm: { bindings: wasmBindings, initInput: { module_or_path: wasmModule } },
		endpoint: env.RIVET_ENDPOINT,
		namespace: "default",
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
		return registryFor(env).handler(request);
	},
};
