package integration

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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

// warmActor creates the counter with key through endpoint, sending params
// as its conn params, and waits (up to a minute) until it answers a plain
// action. Engine 2.3.19 sometimes takes longer than its own route timeouts
// to start a new actor (seen under CI load: guard.service_unavailable or
// pegboard.route_resolve_query_timeout for new actors, for tens of
// seconds, while existing actors answer). Tests that count GetParams
// calls, rely on short-lived tokens or time a drain or reloads warm their
// actor first, so that a slow actor start is not mistaken for a client or
// gateway bug.
func warmActor(t *testing.T, endpoint, key string, params any) {
	t.Helper()
	cp, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequest("POST", endpoint+actionPath(key, "slow"), strings.NewReader(`{"args":[0]}`))
		req.Header.Set("X-Rivet-Encoding", "json")
		req.Header.Set("X-Rivet-Conn-Params", string(cp))
		res, err := http.DefaultClient.Do(req)
		status := 0
		if err == nil {
			status = res.StatusCode
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		switch {
		case status == http.StatusOK:
			if attempt > 1 {
				t.Logf("actor %s answered after %d attempts", key, attempt)
			}
			return
		case status != 0 && status != http.StatusBadGateway && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout:
			t.Fatalf("warming actor %s: status %d", key, status)
		case time.Now().After(deadline):
			t.Fatalf("warming actor %s: not answering after a minute (status %d, %v)", key, status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readFrame reads one unmasked (server) WebSocket frame off br: its opcode
// and payload (at most 1 MiB).
func readFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}
