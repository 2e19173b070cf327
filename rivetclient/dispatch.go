package rivetclient

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// dispatcher runs a Conn's callbacks (events, status changes, errors) one
// at a time, in order, on its own goroutine, so that a slow callback or a
// callback calling back into the Conn (Action, On, Close) never blocks the
// socket reader. The queue is unbounded; enqueue never blocks.
type dispatcher struct {
	mu       sync.Mutex
	queue    []func()
	stopping bool
	wake     chan struct{}
	done     chan struct{}
	gid      atomic.Uint64 // id of the goroutine running the callbacks
}

func newDispatcher() *dispatcher {
	return &dispatcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// enqueue schedules fn; it is dropped once the dispatcher has stopped.
func (d *dispatcher) enqueue(fn func()) {
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return
	}
	d.queue = append(d.queue, fn)
	d.mu.Unlock()
	d.signal()
}

func (d *dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// stop makes run return once the callbacks already queued have run;
// later ones are dropped.
func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	d.signal()
}

func (d *dispatcher) run() {
	d.gid.Store(goroutineID())
	defer close(d.done)
	for {
		d.mu.Lock()
		batch := d.queue
		d.queue = nil
		stopping := d.stopping
		d.mu.Unlock()
		for _, fn := range batch {
			fn()
		}
		if len(batch) > 0 {
			continue
		}
		if stopping {
			return
		}
		<-d.wake
	}
}

// inCallback reports whether the caller runs on the dispatcher goroutine,
// i.e. inside one of its callbacks.
func (d *dispatcher) inCallback() bool {
	return d.gid.Load() == goroutineID()
}

// goroutineID returns the current goroutine's id, parsed from the
// "goroutine N [" header of its stack trace. It is only used to let Close,
// called from a callback, avoid waiting for the callback goroutine to end.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}
