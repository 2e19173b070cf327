// Package harness runs the real RivetKit stack, the rivet-gateway binary and the real RivetKit
// JS client for end-to-end tests.
//
// A typical gateway test:
//
//	up := harness.StartUpstream(t) // Rivet Engine + actor server (integration/upstream)
//	gw := harness.StartGateway(t, `
//	server: {listen: "{{LISTEN}}"}
//	admin: {listen: "{{ADMIN}}"}
//	upstream: {url: "`+up.URL+`"}
//	`)
//	res := harness.RunChecks(t, gw.URL, map[string]string{"ENC": "json"}, "whoami-http")
//
// Every process the harness starts is ended by a t.Cleanup; the upstream additionally has a
// watchdog that stops it when the test binary dies without running its cleanups (for example
// on a -timeout panic). Every wait is bounded.
//
// Tests that use BuildGateway or StartGateway should run Main from their TestMain, so the
// gateway binary built for the test binary is removed at exit.
//
// StartServerlessUpstream starts the same engine with the actors served by RivetKit's serverless
// handler in workerd, through a serverless runner pool (Upstream.Pool) that clients select.
//
// The JS side lives in integration/upstream: counter.mjs (actor "counter"), server.mjs (its
// envoy host), serverless/ (its workerd host), checks.mjs (the checks RunChecks selects by
// name) and scripts/start.sh, scripts/start-serverless.sh, scripts/stop.sh. Its node_modules
// must be installed (make test does it; or npm install --no-audit --no-fund there).
package harness
