package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Ports are drawn at random from [portMin, portMax): below Linux's ephemeral range (32768+), so
// outgoing connections do not occupy them, and random so that test binaries running in
// parallel (go test ./...) rarely pick the same ones. Within one test binary a port is never
// handed out twice.
const (
	portMin = 20000
	portMax = 32000
	// portAttempts bounds the search for a free port group.
	portAttempts = 200
)

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// reservePorts returns a base port P such that P+off is free on 127.0.0.1 for every off in
// offsets, and marks those ports as used in this process. The ports are only probed, not held:
// a process that starts listening on them may still fail with "address in use", so callers
// retry with a new reservation then.
func reservePorts(offsets ...int) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	maxOff := 0
	for _, off := range offsets {
		maxOff = max(maxOff, off)
	}
	for range portAttempts {
		base := portMin + rand.IntN(portMax-portMin-maxOff)
		if groupFree(base, offsets) {
			for _, off := range offsets {
				portsUsed[base+off] = true
			}
			return base, nil
		}
	}
	return 0, fmt.Errorf("harness: no free loopback port group %v in [%d, %d) after %d attempts", offsets, portMin, portMax, portAttempts)
}

// groupFree reports whether base+off can be listened on for every offset, and none of them was
// handed out before.
func groupFree(base int, offsets []int) bool {
	for _, off := range offsets {
		port := base + off
		if portsUsed[port] {
			return false
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}
