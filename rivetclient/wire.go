package rivetclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Encoding is the encoding of the messages a client exchanges with actors:
// the /connect WebSocket, stateless actions, queue sends and their errors
// (rivet-protocol.md §6). Choose it with [WithEncoding].
type Encoding string

const (
	// EncodingBARE is versioned BARE (client protocol v4, a 2-byte
	// little-endian version prefix) with values as CBOR inside: the JS
	// client's default, and this client's.
	EncodingBARE Encoding = "bare"
	// EncodingCBOR is CBOR messages of the JSON shape.
	EncodingCBOR Encoding = "cbor"
	// EncodingJSON is JSON messages with RivetKit's compat tags.
	EncodingJSON Encoding = "json"
)

// DefaultEncoding is the encoding of a client without WithEncoding: the
// RivetKit JS client's default.
const DefaultEncoding = EncodingBARE

// clientProtocolVersion is the client protocol version this client speaks
// (CLIENT_PROTOCOL_CURRENT_VERSION of rivetkit 2.3.19); BARE messages carry
// it as their first two bytes.
const clientProtocolVersion = 4

// Values (arguments, outputs, event arguments, queue bodies, error
// metadata) cross every codec as JSON. Going out they are compat JSON
// (encodeCompat's output); coming in, each codec turns its bytes into
// compat JSON and readValue revives it. In CBOR and BARE a value is the
// CBOR encoding of the compat tree, as RivetKit's encodeCborCompat writes
// and decodeCborCompat reads it.

// codec is one encoding of the client protocol.
type codec interface {
	encoding() Encoding
	// binary reports whether messages are binary: WebSocket binary frames
	// and application/octet-stream bodies.
	binary() bool

	// actionRequest and subscriptionRequest encode ToServer messages;
	// args is the compat JSON array of the arguments.
	actionRequest(id uint64, name string, args json.RawMessage) ([]byte, error)
	subscriptionRequest(event string, subscribe bool) []byte
	// toClient decodes a ToClient message. On error the message's tag is
	// set when it could be read.
	toClient(data []byte) (toClientMessage, error)

	httpActionRequest(args json.RawMessage) ([]byte, error)
	httpActionResponse(data []byte) (output json.RawMessage, err error)
	queueSendRequest(q queueSend) ([]byte, error)
	queueSendResponse(data []byte) (SendResult, error)
	// httpError decodes an HTTP error body; ok is false when data is not
	// one.
	httpError(data []byte) (ae *ActorError, ok bool)
}

// codecFor returns the codec of e; ok is false for an unknown encoding.
func codecFor(e Encoding) (c codec, ok bool) {
	switch e {
	case EncodingJSON:
		return jsonCodec{}, true
	case EncodingCBOR:
		return cborCodec{}, true
	case EncodingBARE:
		return bareCodec{}, true
	}
	return nil, false
}

// contentType is the Content-Type of request bodies in c.
func contentType(c codec) string {
	if c.binary() {
		return "application/octet-stream"
	}
	return "application/json"
}

// queueSend is an HttpQueueSendRequest; body is compat JSON.
type queueSend struct {
	body      json.RawMessage
	name      string
	wait      bool
	timeoutMs *int64
}

// toClientMessage is a decoded ToClient message with its values revived.
type toClientMessage struct {
	tag string // Init, Error, ActionResponse, Event (others are ignored)

	actorID, connectionID string // Init

	err      *ActorError // Error
	actionID *uint64     // Error: the action it answers, nil for the connection

	id        uint64          // ActionResponse
	output    json.RawMessage // ActionResponse
	outputErr error           // ActionResponse whose output does not decode

	event string            // Event
	args  []json.RawMessage // Event
}

// rawToClient is a ToClient message in the JSON shape before its values
// are revived; the binary codecs decode into it too, so that every
// encoding is read by the same code.
type rawToClient struct {
	tag      string
	init     initVal
	response actionResponseVal
	event    eventVal
	err      errorVal
}

func (m rawToClient) read() (toClientMessage, error) {
	out := toClientMessage{tag: m.tag}
	var err error
	switch m.tag {
	case "Init":
		out.actorID, out.connectionID = m.init.ActorID, m.init.ConnectionID
	case "ActionResponse":
		var ok bool
		out.id, ok, err = parseID(m.response.ID)
		if err == nil && !ok {
			err = errors.New("no id")
		}
		if err == nil {
			// The action is answered even if its output is unreadable.
			out.output, out.outputErr = reviveJSON(m.response.Output)
		}
	case "Error":
		out.err, out.actionID, err = readErrorVal(m.err)
	case "Event":
		out.event = m.event.Name
		out.args, err = eventArgs(m.event.Args)
	}
	if err != nil {
		return toClientMessage{tag: m.tag}, fmt.Errorf("rivetclient: malformed %s message: %w", m.tag, err)
	}
	return out, nil
}

// eventArgs revives an Event's args into one JSON value per argument.
func eventArgs(raw json.RawMessage) ([]json.RawMessage, error) {
	revived, err := reviveJSON(raw)
	if err != nil {
		return nil, err
	}
	if len(revived) == 0 || bytes.Equal(revived, []byte("null")) {
		return nil, nil
	}
	var args []json.RawMessage
	if err := json.Unmarshal(revived, &args); err != nil {
		// Not a list: a single argument.
		return []json.RawMessage{revived}, nil
	}
	return args, nil
}

// readErrorVal builds the error of an Error message; id is the action it
// answers, nil for a connection-level error.
func readErrorVal(v errorVal) (*ActorError, *uint64, error) {
	ae := &ActorError{Group: v.Group, Code: v.Code, Message: v.Message, Metadata: readMetadata(v.Metadata)}
	id, ok, err := parseID(v.ActionID)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return ae, nil, nil
	}
	return ae, &id, nil
}

// readMetadata revives error metadata; null and absent metadata are nil,
// and metadata that does not revive is kept as it came.
func readMetadata(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	if md, err := reviveJSON(raw); err == nil {
		return md
	}
	return raw
}

// httpErrorVal is the JSON shape of an HTTP error body.
type httpErrorVal struct {
	Group    *string         `json:"group"`
	Code     *string         `json:"code"`
	Message  string          `json:"message"`
	Metadata json.RawMessage `json:"metadata"`
}

func (v httpErrorVal) read() (*ActorError, bool) {
	if v.Group == nil || v.Code == nil {
		return nil, false
	}
	return &ActorError{Group: *v.Group, Code: *v.Code, Message: v.Message, Metadata: readMetadata(v.Metadata)}, true
}

// queueResponseVal is the JSON shape of an HttpQueueSendResponse.
type queueResponseVal struct {
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response"`
}

func (v queueResponseVal) read() (SendResult, error) {
	if v.Status == "" {
		return SendResult{}, fmt.Errorf("rivetclient: queue response without a status")
	}
	out, err := reviveJSON(v.Response)
	if err != nil {
		return SendResult{}, err
	}
	if bytes.Equal(out, []byte("null")) {
		out = nil
	}
	return SendResult{Status: v.Status, Response: out}, nil
}

// --- JSON -------------------------------------------------------------

type jsonCodec struct{}

func (jsonCodec) encoding() Encoding { return EncodingJSON }
func (jsonCodec) binary() bool       { return false }

func (jsonCodec) actionRequest(id uint64, name string, args json.RawMessage) ([]byte, error) {
	nameJSON, err := json.Marshal(name)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 80+len(nameJSON)+len(args))
	b = append(b, `{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `"],"name":`...)
	b = append(b, nameJSON...)
	b = append(b, `,"args":`...)
	b = append(b, args...)
	return append(b, `}}}`...), nil
}

func (jsonCodec) subscriptionRequest(event string, subscribe bool) []byte {
	nameJSON, _ := json.Marshal(event) // marshalling a string cannot fail
	return fmt.Appendf(nil, `{"body":{"tag":"SubscriptionRequest","val":{"eventName":%s,"subscribe":%t}}}`, nameJSON, subscribe)
}

func (jsonCodec) toClient(data []byte) (toClientMessage, error) {
	var msg wireMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return toClientMessage{}, fmt.Errorf("rivetclient: malformed message: %w", err)
	}
	m := rawToClient{tag: msg.Body.Tag}
	var dst any
	switch m.tag {
	case "Init":
		dst = &m.init
	case "ActionResponse":
		dst = &m.response
	case "Error":
		dst = &m.err
	case "Event":
		dst = &m.event
	default:
		return toClientMessage{tag: m.tag}, nil
	}
	if err := json.Unmarshal(msg.Body.Val, dst); err != nil {
		return toClientMessage{tag: m.tag}, fmt.Errorf("rivetclient: malformed %s message: %w", m.tag, err)
	}
	return m.read()
}

func (jsonCodec) httpActionRequest(args json.RawMessage) ([]byte, error) {
	b := make([]byte, 0, len(args)+10)
	return append(append(append(b, `{"args":`...), args...), '}'), nil
}

func (jsonCodec) httpActionResponse(data []byte) (json.RawMessage, error) {
	var resp struct {
		Output json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, err
	}
	return reviveJSON(resp.Output)
}

func (jsonCodec) queueSendRequest(q queueSend) ([]byte, error) {
	return json.Marshal(struct {
		Body    json.RawMessage `json:"body"`
		Wait    bool            `json:"wait"`
		Timeout *int64          `json:"timeout,omitempty"`
		Name    string          `json:"name"`
	}{Body: q.body, Wait: q.wait, Timeout: q.timeoutMs, Name: q.name})
}

func (jsonCodec) queueSendResponse(data []byte) (SendResult, error) {
	var v queueResponseVal
	if err := json.Unmarshal(data, &v); err != nil {
		return SendResult{}, err
	}
	return v.read()
}

func (jsonCodec) httpError(data []byte) (*ActorError, bool) {
	var v httpErrorVal
	if json.Unmarshal(data, &v) != nil {
		return nil, false
	}
	return v.read()
}
