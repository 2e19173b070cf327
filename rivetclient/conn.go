package rivetclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Status is the state of a [Conn].
type Status int

const (
	// StatusIdle: not connected and not trying to be: after Close, or after
	// a terminal error (auth.*, user.*, …) stopped the retries.
	StatusIdle Status = iota
	// StatusConnecting: a connection attempt is in progress (GetParams,
	// WebSocket dial, waiting for Init).
	StatusConnecting
	// StatusConnected: the actor sent Init; actions are sent immediately.
	StatusConnected
	// StatusDisconnected: the connection was lost or an attempt failed; the
	// next attempt follows (immediately after a loss, after the backoff
	// delay after a failed attempt). Actions issued now wait for it.
	StatusDisconnected
)

// String returns "idle", "connecting", "connected" or "disconnected".
func (s Status) String() string {
	switch s {
	case StatusIdle:
		return "idle"
	case StatusConnecting:
		return "connecting"
	case StatusConnected:
		return "connected"
	case StatusDisconnected:
		return "disconnected"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Event is an event broadcast by the actor to a connection.
type Event struct {
	// Name is the event name.
	Name string
	// Args are the event's arguments as JSON (compat tags decoded).
	Args []json.RawMessage
}

// Decode decodes Args[i] into dst[i] like Action decodes its output; a nil
// dst[i] skips that argument and missing arguments decode as null.
func (e Event) Decode(dst ...any) error {
	for i, d := range dst {
		var raw json.RawMessage
		if i < len(e.Args) {
			raw = e.Args[i]
		}
		if err := decodeValue(raw, d); err != nil {
			return fmt.Errorf("rivetclient: event %q arg %d: %w", e.Name, i, err)
		}
	}
	return nil
}

// Timing of socket writes and of Close.
const (
	writeTimeout = 10 * time.Second
	closeGrace   = time.Second
)

// Conn is a stateful connection to an actor over the /connect WebSocket,
// in the client's encoding. It multiplexes concurrent actions, delivers the events
// it is subscribed to, and reconnects on its own until closed: after a
// lost connection at once, after a failed attempt with jittered backoff
// (WithReconnectBackoff). Every attempt calls GetParams again and, once
// connected, re-subscribes the events that have handlers.
//
// Callbacks (On, OnStatusChange, OnError) run one at a time, in order, on
// a goroutine owned by the Conn; they may call any Conn method.
//
// A Conn owns two goroutines; Close stops both. It is safe for concurrent
// use.
type Conn struct {
	h      *Handle
	log    *slog.Logger
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	started   chan error // first connect (nil) or terminal failure
	startOnce sync.Once
	done      chan struct{} // closed when run returns
	disp      *dispatcher

	connectedOnce bool // a socket got to Init; read and written by run's goroutine only

	writeMu sync.Mutex // one writer on the socket; taken before mu

	mu          sync.Mutex
	closed      bool
	status      Status
	ws          *websocket.Conn // socket of the current attempt or connection
	actorID     string
	connID      string
	lastErr     error
	terminalErr error
	nextID      uint64
	pending     map[uint64]*call
	queue       []*call // actions waiting for the connection
	subs        map[string][]*listener[func(Event)]
	onStatus    []*listener[func(Status)]
	onError     []*listener[func(error)]
	statusCh    chan struct{} // closed and replaced on every status change (WaitConnected)
}

type listener[F any] struct {
	fn     F
	active atomic.Bool
}

func newListener[F any](fn F) *listener[F] {
	l := &listener[F]{fn: fn}
	l.active.Store(true)
	return l
}

func removeListener[F any](ls []*listener[F], l *listener[F]) []*listener[F] {
	for i, x := range ls {
		if x == l {
			return append(ls[:i:i], ls[i+1:]...)
		}
	}
	return ls
}

type call struct {
	id   uint64
	msg  []byte
	done chan callResult // buffered: delivery never blocks
}

type callResult struct {
	output    json.RawMessage // revived
	outputErr error           // the output did not decode
	err       error
}

// Connect opens a connection to the actor and waits until it is connected
// (the actor sent Init). ctx bounds only this wait, not the connection:
// the connection lives until Close. Retryable failures (GetParams errors,
// lifecycle close reasons, network errors) are retried with backoff while
// ctx allows; when ctx ends first, the error wraps both ctx.Err() and the
// last attempt's error. A terminal error (e.g. auth.unauthorized,
// user.unauthorized) is returned at once.
func (h *Handle) Connect(ctx context.Context) (*Conn, error) {
	c, err := h.start(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	select {
	case err := <-c.started:
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		last := c.lastError()
		c.Close()
		return nil, fmt.Errorf("rivetclient: connect %s: %w", h.target, errors.Join(ctx.Err(), last))
	}
}

// start makes a Conn living until Close (and the values of parent) and
// starts connecting it in the background.
func (h *Handle) start(parent context.Context) (*Conn, error) {
	lifetime, cancel := context.WithCancel(parent)
	c := &Conn{
		h:        h,
		log:      h.client.log.With("target", h.target.String()),
		ctx:      lifetime,
		cancel:   cancel,
		started:  make(chan error, 1),
		done:     make(chan struct{}),
		disp:     newDispatcher(h.client.eventBuffer),
		pending:  map[uint64]*call{},
		subs:     map[string][]*listener[func(Event)]{},
		statusCh: make(chan struct{}),
	}
	if err := h.client.addConn(c); err != nil {
		cancel()
		return nil, err
	}
	go c.disp.run()
	go c.run()
	return c, nil
}

// Status returns the connection's current status.
func (c *Conn) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// ActorID returns the id of the actor, from the last Init message.
func (c *Conn) ActorID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.actorID
}

// ConnectionID returns the connection id from the last Init message; it
// changes on every reconnect.
func (c *Conn) ConnectionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connID
}

func (c *Conn) lastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Action calls the actor's action name with args over the connection and
// decodes its return value into out (see Handle.Action for decoding).
// Concurrent actions are multiplexed by id; responses may arrive in any
// order. While the connection is (re)connecting the request waits and is
// sent once connected; if the attempt or the connection fails first, the
// action fails with that error (e.g. client.get_params_failed), as in the
// JS client. Cancelling ctx abandons the action (the actor may still run it).
func (c *Conn) Action(ctx context.Context, name string, out any, args ...any) error {
	argsJSON, err := encodeArgs(args)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.terminalErr != nil {
		err := c.terminalErr
		c.mu.Unlock()
		return err
	}
	id := c.nextID
	c.nextID++
	msg, err := c.h.client.codec.actionRequest(id, name, argsJSON)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	cl := &call{id: id, msg: msg, done: make(chan callResult, 1)}
	c.pending[id] = cl
	ws, connected := c.ws, c.status == StatusConnected
	if !connected {
		c.queue = append(c.queue, cl)
	}
	c.mu.Unlock()

	if connected {
		c.writeMu.Lock()
		c.write(ws, msg)
		c.writeMu.Unlock()
	}
	select {
	case r := <-cl.done:
		if r.err != nil {
			return r.err
		}
		err := r.outputErr
		if err == nil {
			err = decodeValue(r.output, out)
		}
		if err != nil {
			return fmt.Errorf("rivetclient: action %q: decode output: %w", name, err)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// On calls fn for every event name the actor broadcasts, until the
// returned function is called. The first handler of an event subscribes
// the connection to it (SubscriptionRequest), the last one to go
// unsubscribes; subscriptions are renewed after every reconnect.
func (c *Conn) On(event string, fn func(Event)) (unsubscribe func()) {
	l := newListener(fn)
	c.writeMu.Lock()
	c.mu.Lock()
	first := len(c.subs[event]) == 0
	c.subs[event] = append(c.subs[event], l)
	ws, send := c.ws, first && c.status == StatusConnected
	c.mu.Unlock()
	if send {
		c.write(ws, c.h.client.codec.subscriptionRequest(event, true))
	}
	c.writeMu.Unlock()
	return sync.OnceFunc(func() {
		l.active.Store(false)
		c.writeMu.Lock()
		defer c.writeMu.Unlock()
		c.mu.Lock()
		c.subs[event] = removeListener(c.subs[event], l)
		last := len(c.subs[event]) == 0
		if last {
			delete(c.subs, event)
		}
		ws, send := c.ws, last && c.status == StatusConnected
		c.mu.Unlock()
		if send {
			c.write(ws, c.h.client.codec.subscriptionRequest(event, false))
		}
	})
}

// DroppedEvents returns how many event deliveries were dropped because
// the Conn's callbacks fell behind (see [WithEventBuffer]).
func (c *Conn) DroppedEvents() uint64 { return c.disp.dropped.Load() }

// OnStatusChange calls fn with every new status, until the returned
// function is called.
func (c *Conn) OnStatusChange(fn func(Status)) (unsubscribe func()) {
	l := newListener(fn)
	c.mu.Lock()
	c.onStatus = append(c.onStatus, l)
	c.mu.Unlock()
	return sync.OnceFunc(func() {
		l.active.Store(false)
		c.mu.Lock()
		c.onStatus = removeListener(c.onStatus, l)
		c.mu.Unlock()
	})
}

// OnError calls fn with every connection-level error, until the returned
// function is called: failed attempts (GetParams failures, refused or
// closed sockets), lost connections, and Error messages not tied to an
// action. Errors with a structured reason are *ActorError; IsRetryable
// tells whether the Conn keeps trying.
func (c *Conn) OnError(fn func(error)) (unsubscribe func()) {
	l := newListener(fn)
	c.mu.Lock()
	c.onError = append(c.onError, l)
	c.mu.Unlock()
	return sync.OnceFunc(func() {
		l.active.Store(false)
		c.mu.Lock()
		c.onError = removeListener(c.onError, l)
		c.mu.Unlock()
	})
}

// Close closes the connection: the socket is closed with 1000 "Disposed",
// pending actions fail with ErrClosed, the status becomes idle, the
// callbacks already queued run (including the one reporting StatusIdle),
// and both goroutines of the Conn have ended when Close returns. Called from one of
// the Conn's own callbacks, Close does not wait for that callback goroutine:
// it ends once the callback returns. A GetParams call in progress sees its
// context cancelled; Close waits for it to return. Close is idempotent and
// always returns nil.
func (c *Conn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		ws := c.ws
		c.mu.Unlock()
		c.cancel()
		if ws != nil {
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, "Disposed"),
				time.Now().Add(closeGrace))
			_ = ws.SetReadDeadline(time.Now().Add(closeGrace))
		}
	} else {
		c.mu.Unlock()
	}
	<-c.done
	if !c.disp.inCallback() {
		<-c.disp.done
	}
	return nil
}

// run owns the connection: connect (with retries), serve, reconnect.
func (c *Conn) run() {
	defer c.shutdown()
	for {
		ws, err := c.connectWithRetry()
		if err != nil {
			return
		}
		err = c.serve(ws)
		ws.Close()
		if c.ctx.Err() != nil {
			return
		}
		c.log.Warn("rivetclient: connection lost; reconnecting", "err", err)
		c.failAttempt(err, StatusDisconnected)
	}
}

// connectWithRetry makes connection attempts until one succeeds, the Conn
// is closed, or an attempt fails with a terminal error.
func (c *Conn) connectWithRetry() (*websocket.Conn, error) {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		c.setStatusLocked(StatusConnecting)
		c.mu.Unlock()
		ws, err := c.open()
		if err == nil {
			return ws, nil
		}
		if c.ctx.Err() != nil {
			return nil, err
		}
		if !c.shouldRetry(err) {
			c.log.Warn("rivetclient: connection failed; not retrying", "err", err)
			c.mu.Lock()
			c.terminalErr = err
			c.mu.Unlock()
			c.failAttempt(err, StatusIdle)
			c.signalStart(err)
			return nil, err
		}
		delay := c.backoff(attempt)
		c.log.Warn("rivetclient: connection attempt failed; retrying", "err", err, "attempt", attempt+1, "delay", delay)
		c.failAttempt(err, StatusDisconnected)
		if err := sleepCtx(c.ctx, delay); err != nil {
			return nil, err
		}
	}
}

// shouldRetry classifies a failed attempt like the JS client's
// #shouldRetryConnectionOpenError, plus network errors: see IsRetryable.
// Key handles also retry stale-actor errors (actor.not_found, …) while
// connecting, so the key is resolved again.
//
// Unlike the JS client, a Conn that has been connected before also retries
// what an engine answers while it restarts (isRestartSignal): the earlier
// connection shows namespace, runner config and route did exist. Before the
// first connection they stay terminal, so a misconfigured namespace or pool
// still fails Connect at once.
func (c *Conn) shouldRetry(err error) bool {
	if IsRetryable(err) {
		return true
	}
	var ae *ActorError
	if !errors.As(err, &ae) {
		return false
	}
	return (c.h.target.dynamic() && isStaleActorError(ae)) ||
		(c.connectedOnce && isRestartSignal(ae))
}

// backoff returns the delay after failed attempt n (0-based): uniform in
// [0, min(max, base·2ⁿ)] ("full jitter"; the JS client's p-retry uses the
// same bounds, factor 2 and no jitter).
func (c *Conn) backoff(n int) time.Duration {
	return fullJitter(backoffCeiling(c.h.client.backoffBase, c.h.client.backoffMax, n))
}

// backoffCeiling is min(max, base·2ⁿ), without overflow.
func backoffCeiling(base, max time.Duration, n int) time.Duration {
	if n >= 32 {
		return max
	}
	d := base << n
	if d <= 0 || d > max {
		return max
	}
	return d
}

// fullJitter returns a uniformly random duration in [0, d].
func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// failAttempt records err as the outcome of the current socket, sets the
// status, fails every pending action with err and reports it to the error
// handlers.
func (c *Conn) failAttempt(err error, status Status) {
	c.mu.Lock()
	c.lastErr = err
	c.ws = nil
	c.setStatusLocked(status)
	c.mu.Unlock()
	c.failPending(err)
}

// failPending fails every pending action with err and reports err to the
// error handlers.
func (c *Conn) failPending(err error) {
	c.mu.Lock()
	pending := c.takePendingLocked()
	handlers := append([]*listener[func(error)](nil), c.onError...)
	c.mu.Unlock()
	for _, cl := range pending {
		cl.done <- callResult{err: err}
	}
	if len(handlers) > 0 {
		c.disp.enqueue(func() {
			for _, l := range handlers {
				if l.active.Load() {
					l.fn(err)
				}
			}
		})
	}
}

func (c *Conn) takePendingLocked() []*call {
	pending := make([]*call, 0, len(c.pending))
	for _, cl := range c.pending {
		pending = append(pending, cl)
	}
	clear(c.pending)
	c.queue = nil
	return pending
}

// setStatusLocked changes the status and schedules the status callbacks.
func (c *Conn) setStatusLocked(s Status) {
	if c.status == s {
		return
	}
	c.status = s
	close(c.statusCh)
	c.statusCh = make(chan struct{})
	handlers := append([]*listener[func(Status)](nil), c.onStatus...)
	if len(handlers) == 0 {
		return
	}
	c.disp.enqueue(func() {
		for _, l := range handlers {
			if l.active.Load() {
				l.fn(s)
			}
		}
	})
}

func (c *Conn) signalStart(err error) {
	c.startOnce.Do(func() { c.started <- err })
}

// open makes one connection attempt: GetParams, dial, wait for Init.
func (c *Conn) open() (*websocket.Conn, error) {
	params, err := c.h.resolveParams(c.ctx)
	if err != nil {
		return nil, err
	}
	ws, err := c.h.dial(c.ctx, "/connect", c.h.client.codec.encoding(), params)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ws.Close()
		return nil, ErrClosed
	}
	c.ws = ws
	c.mu.Unlock()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, closeError(err)
		}
		msg, err := c.h.client.codec.toClient(data)
		if err != nil {
			if msg.tag == "Init" { // no other Init will follow
				ws.Close()
				return nil, err
			}
			c.log.Warn("rivetclient: ignoring malformed message", "err", err)
			continue
		}
		switch msg.tag {
		case "Init":
			c.mu.Lock()
			c.actorID, c.connID = msg.actorID, msg.connectionID
			c.mu.Unlock()
			c.log.Debug("rivetclient: connected", "actor_id", msg.actorID, "connection_id", msg.connectionID)
			return ws, nil
		case "Error":
			// Nothing was sent yet, so the error is about the connection.
			ws.Close()
			return nil, msg.err
		default:
			c.log.Debug("rivetclient: ignoring message before Init", "tag", msg.tag)
		}
	}
}

// serve runs a connected socket: marks the Conn connected, renews the
// subscriptions, sends the queued actions, then reads until the socket
// ends and returns why.
func (c *Conn) serve(ws *websocket.Conn) error {
	c.writeMu.Lock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.writeMu.Unlock()
		return ErrClosed
	}
	c.ws = ws
	c.lastErr = nil
	c.connectedOnce = true
	c.setStatusLocked(StatusConnected)
	events := make([]string, 0, len(c.subs))
	for name := range c.subs {
		events = append(events, name)
	}
	var queued []*call
	for _, cl := range c.queue {
		if c.pending[cl.id] == cl { // not abandoned meanwhile
			queued = append(queued, cl)
		}
	}
	c.queue = nil
	c.mu.Unlock()
	c.signalStart(nil)
	for _, name := range events {
		c.write(ws, c.h.client.codec.subscriptionRequest(name, true))
	}
	for _, cl := range queued {
		c.write(ws, cl.msg)
	}
	c.writeMu.Unlock()

	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return closeError(err)
		}
		c.handleMessage(data)
	}
}

func (c *Conn) handleMessage(data []byte) {
	msg, err := c.h.client.codec.toClient(data)
	if err != nil {
		c.log.Warn("rivetclient: ignoring malformed message", "tag", msg.tag, "err", err)
		return
	}
	switch msg.tag {
	case "ActionResponse":
		c.deliver(msg.id, callResult{output: msg.output, outputErr: msg.outputErr})
	case "Error":
		if msg.actionID != nil {
			c.deliver(*msg.actionID, callResult{err: msg.err})
			return
		}
		// A connection-level error: the socket usually closes next.
		c.log.Warn("rivetclient: connection error", "err", msg.err)
		c.failPending(msg.err)
	case "Event":
		c.mu.Lock()
		handlers := append([]*listener[func(Event)](nil), c.subs[msg.event]...)
		c.mu.Unlock()
		if len(handlers) == 0 {
			return
		}
		ev := Event{Name: msg.event, Args: msg.args}
		dropped := c.disp.enqueueEvent(func() {
			for _, l := range handlers {
				if l.active.Load() {
					l.fn(ev)
				}
			}
		})
		if n := c.disp.dropped.Load(); dropped && n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th… drop
			c.log.Warn("rivetclient: event handlers fall behind; dropping the oldest waiting events", "dropped", n, "buffer", c.h.client.eventBuffer)
		}
	case "Init":
		c.mu.Lock()
		c.actorID, c.connID = msg.actorID, msg.connectionID
		c.mu.Unlock()
	default:
		c.log.Debug("rivetclient: ignoring message", "tag", msg.tag)
	}
}

// deliver completes the pending action id; unknown ids (abandoned
// actions) are ignored.
func (c *Conn) deliver(id uint64, r callResult) {
	c.mu.Lock()
	cl, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if !ok {
		c.log.Debug("rivetclient: response for unknown action", "id", id)
		return
	}
	cl.done <- r
}

// write sends one message (a binary frame in the binary encodings, else a
// text frame); the caller holds writeMu. A failed write
// closes the socket so that the reader notices and the Conn reconnects.
func (c *Conn) write(ws *websocket.Conn, data []byte) {
	if ws == nil {
		return
	}
	_ = ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	frame := websocket.TextMessage
	if c.h.client.codec.binary() {
		frame = websocket.BinaryMessage
	}
	if err := ws.WriteMessage(frame, data); err != nil {
		c.log.Debug("rivetclient: write failed", "err", err)
		ws.Close()
	}
}

// shutdown runs when run returns: it releases the socket, fails what is
// pending, settles the status and stops the callback goroutine.
func (c *Conn) shutdown() {
	c.mu.Lock()
	ws := c.ws
	c.ws = nil
	err := c.terminalErr
	if c.closed || err == nil {
		err = ErrClosed
	}
	pending := c.takePendingLocked()
	c.setStatusLocked(StatusIdle)
	c.mu.Unlock()
	if ws != nil {
		ws.Close()
	}
	for _, cl := range pending {
		cl.done <- callResult{err: err}
	}
	c.signalStart(err)
	c.h.client.removeConn(c)
	c.disp.stop()
	close(c.done)
}
