package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// baseConfig is the start of every test gateway's config: random loopback
// listeners (filled in by harness.StartGateway), debug logs, and upstream.
// Callers append the sections they test.
func baseConfig(upstream string) string {
	return `
server:
  listen: "{{LISTEN}}"
  shutdown_timeout: 5s
admin:
  listen: "{{ADMIN}}"
log:
  level: debug
upstream:
  url: "` + upstream + `"
`
}
