//go:build race

package harness

// raceEnabled reports whether this test binary was built with -race; BuildGateway then builds
// the gateway with -race too, so end-to-end traffic also hunts for data races in it.
const raceEnabled = true
