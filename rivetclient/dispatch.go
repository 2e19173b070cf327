package rivetclient

import (
	"bytes"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// dispatcher runs a Conn's callbacks (events, status changes, errors) one
// at a time, in order, on its own goroutine, so that a slow callback or a
// callback calling back into the Conn (Action, On, Close) never blocks the
// socket reader. enqueue never blocks. Event deliveries are bounded: when
// maxEvents of them wait, the oldest waiting one is dropped for the new one
// (counted in dropped), so a slow handler costs events, not memory. Status
// changes and errors are never dropped; they come at the pace of
// connection attempts.
type dispatcher struct {
	mu        sync.Mutex
	queue     []queued
	events    int // event deliveries in queue
	maxEvents int
	stopping  bool
	wake      chan struct{}
	done      chan struct{}
	gid       atomic.Uint64 // id of the goroutine running the callbacks
	dropped   atomic.Uint64 // event deliveries dropped
}

type queued struct {
	fn    func()
	event bool // an event delivery, which may be dropped
}

func newDispatcher(maxEvents int) *dispatcher {
	return &dispatcher{maxEvents: maxEvents, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// enqueue schedules fn, which is never dropped while the dispatcher runs;
// it is dropped once the dispatcher has stopped.
func (d *dispatcher) enqueue(fn func()) { d.add(queued{fn: fn}) }

// enqueueEvent schedules an event delivery, dropping the oldest waiting
// one if maxEvents wait already. It reports whether one was dropped.
func (d *dispatcher) enqueueEvent(fn func()) (dropped bool) {
	return d.add(queued{fn: fn, event: true})
}

func (d *dispatcher) add(q queued) (dropped bool) {
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return false
	}
	if q.event {
		if d.events >= d.maxEvents {
			i := slices.IndexFunc(d.queue, func(q queued) bool { return q.event })
			d.queue = slices.Delete(d.queue, i, i+1)
			d.events--
			d.dropped.Add(1)
			dropped = true
		}
		d.events++
	}
	d.queue = append(d.queue, q)
	d.mu.Unlock()
	d.signal()
	return dropped
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
		var next queued
		ok := len(d.queue) > 0
		if ok {
			next = d.queue[0]
			d.queue[0] = queued{}
			d.queue = d.queue[1:]
			if next.event {
				d.events--
			}
		}
		stopping := d.stopping
		d.mu.Unlock()
		if ok {
			next.fn()
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
