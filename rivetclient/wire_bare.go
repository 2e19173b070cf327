package rivetclient

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// The BARE encoding: client protocol v4 as generated from RivetKit's
// client-protocol schema (common/bare/generated/client-protocol/v4.ts),
// each message prefixed by the protocol version as a little-endian u16
// (vbare's serializeWithEmbeddedVersion). Values are "Cbor" data fields:
// the CBOR encoding of the compat tree. BARE's few primitives are written
// here: uint is LEB128, string and data are a uint length and the bytes,
// optional<T> a bool and T, a union tag one byte.

type bareCodec struct{}

func (bareCodec) encoding() Encoding { return EncodingBARE }
func (bareCodec) binary() bool       { return true }

func bareVersioned() []byte {
	return binary.LittleEndian.AppendUint16(make([]byte, 0, 64), clientProtocolVersion)
}

func bareString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func bareBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// bareCBOR appends a data field holding compat JSON value raw as CBOR.
func bareCBOR(b []byte, raw json.RawMessage) ([]byte, error) {
	enc, err := compatToCBOR(nil, raw)
	if err != nil {
		return nil, err
	}
	return append(binary.AppendUvarint(b, uint64(len(enc))), enc...), nil
}

func (bareCodec) actionRequest(id uint64, name string, args json.RawMessage) ([]byte, error) {
	b := append(bareVersioned(), 0) // ToServerBody.ActionRequest
	b = binary.AppendUvarint(b, id)
	return bareCBOR(bareString(b, name), args)
}

func (bareCodec) subscriptionRequest(event string, subscribe bool) []byte {
	b := append(bareVersioned(), 1) // ToServerBody.SubscriptionRequest
	return bareBool(bareString(b, event), subscribe)
}

func (bareCodec) toClient(data []byte) (toClientMessage, error) {
	r, err := newBareReader(data)
	if err != nil {
		return toClientMessage{}, err
	}
	var m rawToClient
	switch tag := r.u8(); tag {
	case 0:
		m.tag = "Init"
		m.init.ActorID = r.string()
		m.init.ConnectionID = r.string()
	case 1:
		m.tag = "Error"
		m.err = errorVal{Group: r.string(), Code: r.string(), Message: r.string()}
		m.err.Metadata = r.optionalValue()
		if r.bool() {
			m.err.ActionID = r.uintJSON()
		}
		r.actorSpecifier()
	case 2:
		m.tag = "ActionResponse"
		m.response.ID = r.uintJSON()
		m.response.Output = r.value()
	case 3:
		m.tag = "Event"
		m.event.Name = r.string()
		m.event.Args = r.value()
	default:
		if r.err == nil {
			return toClientMessage{}, fmt.Errorf("rivetclient: malformed message: unknown ToClient tag %d", tag)
		}
	}
	if err := r.end(); err != nil {
		return toClientMessage{tag: m.tag}, err
	}
	return m.read()
}

func (bareCodec) httpActionRequest(args json.RawMessage) ([]byte, error) {
	return bareCBOR(bareVersioned(), args)
}

func (bareCodec) httpActionResponse(data []byte) (json.RawMessage, error) {
	r, err := newBareReader(data)
	if err != nil {
		return nil, err
	}
	output := r.value()
	if err := r.end(); err != nil {
		return nil, err
	}
	return reviveJSON(output)
}

func (bareCodec) queueSendRequest(q queueSend) ([]byte, error) {
	b, err := bareCBOR(bareVersioned(), q.body)
	if err != nil {
		return nil, err
	}
	b = bareString(bareBool(b, true), q.name)
	b = bareBool(bareBool(b, true), q.wait)
	if q.timeoutMs == nil || *q.timeoutMs < 0 {
		return bareBool(b, false), nil
	}
	return binary.LittleEndian.AppendUint64(bareBool(b, true), uint64(*q.timeoutMs)), nil
}

func (bareCodec) queueSendResponse(data []byte) (SendResult, error) {
	r, err := newBareReader(data)
	if err != nil {
		return SendResult{}, err
	}
	v := queueResponseVal{Status: r.string(), Response: r.optionalValue()}
	if err := r.end(); err != nil {
		return SendResult{}, err
	}
	return v.read()
}

func (bareCodec) httpError(data []byte) (*ActorError, bool) {
	r, err := newBareReader(data)
	if err != nil {
		return nil, false
	}
	group, code, message := r.string(), r.string(), r.string()
	md := r.optionalValue()
	r.actorSpecifier()
	if r.end() != nil {
		return nil, false
	}
	return httpErrorVal{Group: &group, Code: &code, Message: message, Metadata: md}.read()
}

// bareReader reads a versioned BARE message. The first error sticks: every
// later read returns a zero value, and end reports it.
type bareReader struct {
	b   []byte
	err error
}

func newBareReader(data []byte) (*bareReader, error) {
	if len(data) < 2 {
		return nil, errors.New("rivetclient: malformed message: shorter than its version")
	}
	if v := binary.LittleEndian.Uint16(data); v != clientProtocolVersion {
		return nil, fmt.Errorf("rivetclient: client protocol version %d, want %d", v, clientProtocolVersion)
	}
	return &bareReader{b: data[2:]}, nil
}

func (r *bareReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("rivetclient: malformed message: %s", what)
	}
	r.b = nil
}

func (r *bareReader) u8() byte {
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *bareReader) bool() bool {
	switch r.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("invalid bool")
	return false
}

func (r *bareReader) uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("invalid uint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// uintJSON reads a uint as a JSON number, the shape parseID reads.
func (r *bareReader) uintJSON() json.RawMessage {
	v := r.uint()
	if r.err != nil {
		return nil
	}
	return strconv.AppendUint(nil, v, 10)
}

func (r *bareReader) data() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *bareReader) string() string {
	v := r.data()
	if !utf8.Valid(v) {
		r.fail("invalid UTF-8 in a string")
		return ""
	}
	return string(v)
}

// value reads a Cbor field as compat JSON.
func (r *bareReader) value() json.RawMessage {
	v := r.data()
	if r.err != nil {
		return nil
	}
	j, err := cborToJSON(v)
	if err != nil {
		r.fail(err.Error())
		return nil
	}
	return j
}

func (r *bareReader) optionalValue() json.RawMessage {
	if !r.bool() {
		return nil
	}
	return r.value()
}

// actorSpecifier skips an optional ActorSpecifier {actorId, generation,
// key?}: the client does not report it.
func (r *bareReader) actorSpecifier() {
	if !r.bool() {
		return
	}
	r.string()
	r.uint()
	if r.bool() {
		r.string()
	}
}

// end reports the first error, or trailing bytes.
func (r *bareReader) end() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("rivetclient: malformed message: %d trailing bytes", len(r.b))
	}
	return nil
}
