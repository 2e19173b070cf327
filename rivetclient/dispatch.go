package rivetclient

import (
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
	running  atomic.Bool // a callback is running
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
	defer close(d.done)
	for {
		d.mu.Lock()
		batch := d.queue
		d.queue = nil
		stopping := d.stopping
		d.mu.Unlock()
		for _, fn := range batch {
			d.running.Store(true)
			fn()
			d.running.Store(false)
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
