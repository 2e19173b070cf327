// Bundles worker.mjs for workerd into OUT_DIR (argument 1): worker.js, plus the files workerd.capnp
// embeds (rivetkit_wasm_bg.wasm and the config itself), the way wrangler would: browser builds of
// dependencies, Node built-ins left to workerd's node: modules, the wasm module external.
//
// usage: node serverless/build.mjs OUT_DIR
import { copyFileSync, mkdirSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
	console.error("usage: node serverless/build.mjs OUT_DIR");
	process.exit(2);
}
mkdirSync(out, { recursive: true });

const builtins = new Set(builtinModules);
const require = createRequire(import.meta.url);
const wasmFile = join(dirname(require.resolve("@rivetkit/rivetkit-wasm")), "pkg", "rivetkit_wasm_bg.wasm");

await esbuild.build({
	entryPoints: [join(here, "worker.mjs")],
	outfile: join(out, "worker.js"),
	bundle: true,
	format: "esm",
	platform: "browser",
	target: "es2022",
	mainFields: ["browser", "module", "main"],
	conditions: ["workerd", "worker", "browser"],
	logLevel: "warning",
	plugins: [
		{
			name: "workerd-externals",
			setup(build) {
				// Node built-ins, bare or node:-prefixed, come from workerd (nodejs_compat).
				build.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
					const name = args.path.replace(/^node:/, "");
					if (args.path.startsWith("node:") || builtins.has(name)) {
						return { path: `node:${name}`, external: true };
					}
				});
				// The wasm module is a module of its own in workerd.capnp.
				build.onResolve({ filter: /\.wasm$/ }, (args) => ({ path: args.path, external: true }));
			},
		},
	],
});
copyFileSync(wasmFile, join(out, "rivetkit_wasm_bg.wasm"));
copyFileSync(join(here, "workerd.capnp"), join(out, "workerd.capnp"));
