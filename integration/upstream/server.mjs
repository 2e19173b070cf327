// Real RivetKit 2.3.19 actor server: the upstream behind rivet-gateway in the end-to-end tests.
//
// It is an "envoy": it does not listen on any port itself. It dials the Rivet Engine given in
// RIVET_ENDPOINT, and the engine routes /gateway/... requests to the actors defined here.
// scripts/start.sh starts the engine and then this file:
//
//   RIVET_ENDPOINT=http://127.0.0.1:7700 RIVET_RUN_SERVICES=0 node server.mjs
//
// Without RIVET_ENDPOINT rivetkit would spawn an engine of its own, which outlives this process:
// always go through scripts/start.sh in tests.
//
// The actor itself, counter, is in counter.mjs (serverless/worker.mjs serves the same one).
import { setup } from "rivetkit";
import { counter } from "./counter.mjs";

const log = (...args) => console.log(`[server ${new Date().toISOString()}]`, ...args);

export const registry = setup({ use: { counter } });

const t0 = Date.now();
registry
	.startAndWait()
	// scripts/start.sh waits for this exact word.
	.then(() => log(`READY after ${Date.now() - t0}ms`))
	.catch((err) => {
		console.error("[server] startAndWait failed", err);
		process.exit(1);
	});
