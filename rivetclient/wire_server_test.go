package rivetclient

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
)

// The server's side of the codecs, for the fake engine and the vector
// tests: serverDecode turns what a client sends in an encoding into the
// JSON shape (values as compat JSON), serverEncode turns a JSON-shaped
// message of the server into an encoding. JSON is the identity.

func serverDecode(enc Encoding, kind string, data []byte) (json.RawMessage, error) {
	switch enc {
	case EncodingJSON:
		return data, nil
	case EncodingCBOR:
		return cborToJSON(data)
	}
	r, err := newBareReader(data)
	if err != nil {
		return nil, err
	}
	var out []byte
	switch kind {
	case "ToServer":
		switch r.u8() {
		case 0:
			id := r.uint()
			name := r.string()
			args := r.value()
			out = fmt.Appendf(nil, `{"body":{"tag":"ActionRequest","val":{"id":%d,"name":%s,"args":%s}}}`, id, jsonString(name), args)
		case 1:
			name := r.string()
			out = fmt.Appendf(nil, `{"body":{"tag":"SubscriptionRequest","val":{"eventName":%s,"subscribe":%t}}}`, jsonString(name), r.bool())
		default:
			return nil, fmt.Errorf("unknown ToServer tag")
		}
	case "HttpActionRequest":
		out = fmt.Appendf(nil, `{"args":%s}`, r.value())
	case "HttpQueueSendRequest":
		body := r.value()
		out = fmt.Appendf(nil, `{"body":%s`, body)
		if r.bool() {
			out = fmt.Appendf(out, `,"name":%s`, jsonString(r.string()))
		}
		if r.bool() {
			out = fmt.Appendf(out, `,"wait":%t`, r.bool())
		}
		if r.bool() && len(r.b) >= 8 {
			out = fmt.Appendf(out, `,"timeout":%d`, binary.LittleEndian.Uint64(r.b))
			r.b = r.b[8:]
		}
		out = append(out, '}')
	default:
		return nil, fmt.Errorf("serverDecode: unknown kind %q", kind)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return out, nil
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

func serverEncode(enc Encoding, kind string, msg []byte) ([]byte, error) {
	switch enc {
	case EncodingJSON:
		return msg, nil
	case EncodingCBOR:
		return compatToCBOR(nil, msg)
	}
	var m struct {
		Body struct {
			Tag string `json:"tag"`
			Val struct {
				ActorID      string          `json:"actorId"`
				ConnectionID string          `json:"connectionId"`
				Group        string          `json:"group"`
				Code         string          `json:"code"`
				Message      string          `json:"message"`
				Metadata     json.RawMessage `json:"metadata"`
				ActionID     json.RawMessage `json:"actionId"`
				ID           json.RawMessage `json:"id"`
				Output       json.RawMessage `json:"output"`
				Name         string          `json:"name"`
				Args         json.RawMessage `json:"args"`
			} `json:"val"`
		} `json:"body"`
		Output   json.RawMessage `json:"output"`
		Status   string          `json:"status"`
		Response json.RawMessage `json:"response"`
		Group    string          `json:"group"`
		Code     string          `json:"code"`
		Message  string          `json:"message"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, err
	}
	b := bareVersioned()
	var err error
	optionalValue := func(raw json.RawMessage) {
		if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
			b = bareBool(b, false)
			return
		}
		if err == nil {
			b, err = bareCBOR(bareBool(b, true), raw)
		}
	}
	id := func(raw json.RawMessage) (uint64, bool) {
		v, ok, perr := parseID(raw)
		if perr != nil && err == nil {
			err = perr
		}
		return v, ok
	}
	switch kind {
	case "ToClient":
		v := m.Body.Val
		switch m.Body.Tag {
		case "Init":
			b = bareString(bareString(append(b, 0), v.ActorID), v.ConnectionID)
		case "Error":
			b = bareString(bareString(bareString(append(b, 1), v.Group), v.Code), v.Message)
			optionalValue(v.Metadata)
			if n, ok := id(v.ActionID); ok {
				b = binary.AppendUvarint(bareBool(b, true), n)
			} else {
				b = bareBool(b, false)
			}
			b = bareBool(b, false) // actor
		case "ActionResponse":
			n, _ := id(v.ID)
			b = binary.AppendUvarint(append(b, 2), n)
			if err == nil {
				b, err = bareCBOR(b, orNullRaw(v.Output))
			}
		case "Event":
			b = bareString(append(b, 3), v.Name)
			if err == nil {
				b, err = bareCBOR(b, orNullRaw(v.Args))
			}
		default:
			return nil, fmt.Errorf("serverEncode: unknown ToClient tag %q", m.Body.Tag)
		}
	case "HttpActionResponse":
		b, err = bareCBOR(b, orNullRaw(m.Output))
	case "HttpQueueSendResponse":
		b = bareString(b, m.Status)
		optionalValue(m.Response)
	case "HttpResponseError":
		b = bareString(bareString(bareString(b, m.Group), m.Code), m.Message)
		optionalValue(m.Metadata)
		b = bareBool(b, false) // actor
	default:
		return nil, fmt.Errorf("serverEncode: unknown kind %q", kind)
	}
	return b, err
}

func orNullRaw(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// idText is an action id of a decoded ToServer message as decimal text.
func idText(raw json.RawMessage) (string, error) {
	id, ok, err := parseID(raw)
	if err != nil || !ok {
		return "", fmt.Errorf("invalid action id %s", raw)
	}
	return strconv.FormatUint(id, 10), nil
}
