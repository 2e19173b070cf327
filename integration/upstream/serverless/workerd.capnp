# workerd configuration for serverless/worker.mjs, bundled by build.mjs into worker.js next to a
# copy of this file and of rivetkit_wasm_bg.wasm (scripts/start-serverless.sh does both, in
# .run/PORT/worker/). The listening address is given on the command line
# (--socket-addr http=127.0.0.1:P), the engine's URL and the gateway's in the environment
# (RIVET_ENDPOINT, RIVET_PUBLIC_ENDPOINT), and the secret the engine's requests carry
# (WORKER_SECRET).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "rivet", worker = .rivetWorker),
    # Outbound fetch and WebSocket dials (to the engine on loopback) go through this service;
    # workerd's default "internet" service refuses private and loopback addresses.
    (name = "loopback", network = (allow = ["local", "private", "public"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "rivet") ],
);

const rivetWorker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "rivetkit_wasm_bg.wasm", wasm = embed "rivetkit_wasm_bg.wasm"),
  ],
  # nodejs_compat is the default from 2026-08-04 on (RivetKit imports node:async_hooks and
  # node:module; pino and its Node transports are bundled in their browser builds).
  compatibilityDate = "2026-11-01",
  bindings = [
    (name = "RIVET_ENDPOINT", fromEnvironment = "RIVET_ENDPOINT"),
    (name = "RIVET_PUBLIC_ENDPOINT", fromEnvironment = "RIVET_PUBLIC_ENDPOINT"),
    (name = "WORKER_SECRET", fromEnvironment = "WORKER_SECRET"),
  ],
  globalOutbound = "loopback",
);
