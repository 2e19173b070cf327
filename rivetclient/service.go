package rivetclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Open returns a Conn to the actor at once and connects it in the
// background, with the same retries as [Handle.Connect]: a service
// registers its handlers (On, Once, OnStatusChange, OnError, Events) before
// the first connection, so that no event and no error of the first attempts
// is missed, and waits with [Conn.WaitConnected] where it needs to. Actions
// called before the connection is up wait for it (bounded by their
// context). Close the Conn when done.
func (h *Handle) Open() (*Conn, error) {
	return h.start(context.Background())
}

// WaitConnected returns nil once the Conn is connected: at once if it is,
// else when it connects (again). It returns the Conn's terminal error once
// the Conn has given up or been closed, and ctx's error (joined with the
// last attempt's error) when ctx ends first.
func (c *Conn) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		status, ch, terminal, closed := c.status, c.statusCh, c.terminalErr, c.closed
		c.mu.Unlock()
		switch {
		case status == StatusConnected:
			return nil
		case terminal != nil:
			return terminal
		case closed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-c.done:
			c.mu.Lock()
			terminal = c.terminalErr
			c.mu.Unlock()
			if terminal != nil {
				return terminal
			}
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("rivetclient: wait for %s: %w", c.h.target, errors.Join(ctx.Err(), c.lastError()))
		}
	}
}

// Once calls fn with the next event named event, then unsubscribes; the
// returned function unsubscribes before that.
func (c *Conn) Once(event string, fn func(Event)) (unsubscribe func()) {
	var fired atomic.Bool
	var unsub atomic.Pointer[func()]
	u := c.On(event, func(e Event) {
		if fired.Swap(true) {
			return
		}
		if p := unsub.Load(); p != nil {
			(*p)()
		}
		fn(e)
	})
	unsub.Store(&u)
	if fired.Load() {
		u() // fired before unsub was stored
	}
	return u
}

// EventStream is a bounded stream of one event's deliveries (see
// [Conn.Events]).
type EventStream struct {
	// C receives the events in order. It is closed when the stream is
	// closed: by Close, by the end of the context given to Events, or when
	// the Conn is closed.
	C <-chan Event

	c       chan Event
	quit    chan struct{} // closed by Close
	mu      sync.Mutex
	closed  bool
	dropped atomic.Uint64
	unsub   func()
	stop    func() bool // ends the AfterFunc on Events' context
}

// Events subscribes to event and delivers its events on a channel holding
// at most buffer (≥ 1) of them. Overflow policy: when the reader falls
// behind and the channel is full, the oldest undelivered event is dropped
// to make room for the newest (counted by Dropped), so a slow reader never
// grows memory or blocks the Conn's other callbacks. The stream ends when
// ctx ends, the Conn is closed, or Close is called.
func (c *Conn) Events(ctx context.Context, event string, buffer int) (*EventStream, error) {
	if buffer < 1 {
		return nil, errors.New("rivetclient: Events: buffer must be at least 1")
	}
	ch := make(chan Event, buffer)
	s := &EventStream{C: ch, c: ch, quit: make(chan struct{})}
	s.unsub = c.On(event, s.push)
	stop := context.AfterFunc(ctx, s.Close)
	s.mu.Lock()
	s.stop = stop
	s.mu.Unlock()
	go func() {
		select {
		case <-c.done:
			s.Close()
		case <-s.quit:
		}
	}()
	return s, nil
}

// push delivers e, dropping the oldest queued event when the buffer is
// full. It runs on the Conn's callback goroutine, the only sender.
func (s *EventStream) push(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for {
		select {
		case s.c <- e:
			return
		default:
		}
		select {
		case <-s.c:
			s.dropped.Add(1)
		default:
		}
	}
}

// Dropped returns how many events were dropped because the reader was
// behind.
func (s *EventStream) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C. It is safe to call more than once.
func (s *EventStream) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.c)
	close(s.quit)
	stop := s.stop
	s.mu.Unlock()
	s.unsub()
	if stop != nil {
		stop()
	}
}

// Caller is what can call an action: a [*Handle] (stateless HTTP) or a
// [*Conn] (over its connection).
type Caller interface {
	Action(ctx context.Context, name string, out any, args ...any) error
}

// Call calls the action name on a with args and decodes its return value
// into a T: the typed form of Action.
//
//	n, err := rivetclient.Call[int](ctx, conn, "increment", 5)
func Call[T any](ctx context.Context, a Caller, name string, args ...any) (T, error) {
	var out T
	err := a.Action(ctx, name, &out, args...)
	return out, err
}

// Subscribe calls fn with the first argument of every event named event,
// decoded into a T, until the returned function is called: the typed form
// of On. An event whose argument does not decode into a T is reported to
// fn as an error, with the zero T.
func Subscribe[T any](c *Conn, event string, fn func(T, error)) (unsubscribe func()) {
	return c.On(event, func(e Event) {
		var v T
		err := e.Decode(&v)
		fn(v, err)
	})
}
