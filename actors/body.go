package actors

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// bodyFields are the fields of POST and PUT /actors bodies (the engine's
// CreateRequest and GetOrCreateRequest, deny_unknown_fields).
var bodyFields = []string{"datacenter", "name", "key", "input", "runner_name_selector", "crash_policy"}

// readBody reads the JSON body of POST or PUT /actors (at most limit
// bytes), returns the actor it names in rt's namespace, and puts the body
// back unchanged for the proxy.
func readBody(w http.ResponseWriter, req *http.Request, rt *rivet.Route, limit int64) (rivet.Actor, error) {
	if req.ContentLength > limit {
		return rivet.Actor{}, rivet.ErrRequestTooLarge
	}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	req.Body.Close()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return rivet.Actor{}, rivet.ErrRequestTooLarge.Wrap(err)
		}
		return rivet.Actor{}, rivet.ErrClientClosed.Wrap(err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.TransferEncoding = nil
	name, key, err := ParseBody(body, rt.Intent == rivet.IntentGetOrCreate)
	if err != nil {
		return rivet.Actor{}, rivet.ErrInvalidRequest.Wrap(err).With("reason", err.Error())
	}
	return rivet.Actor{Namespace: rt.Namespace, Name: name, Key: key}, nil
}

// ParseBody reads the actor a POST or PUT /actors body names, refusing
// every body the engine (serde_json) could read differently from Go's
// encoding/json: invalid UTF-8, duplicate or unknown fields (Go would take
// the last, or match field names case-insensitively), trailing data, a
// name that is not a non-empty string, and a key that is not a canonical
// serialized key (rivet.ParseSerializedKey). keyRequired is set for PUT,
// whose key the engine requires; a POST without a key (or with null) names
// the keyless actor, returned as the empty key.
func ParseBody(body []byte, keyRequired bool) (name string, key []string, err error) {
	if !utf8.Valid(body) {
		return "", nil, errors.New("body is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", nil, errors.New("body is not a JSON object")
	}
	var seen []string
	var rawName, rawKey json.RawMessage
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", nil, errors.New("body is not valid JSON")
		}
		field, _ := t.(string)
		if !slices.Contains(bodyFields, field) {
			return "", nil, errors.New("unknown field in body")
		}
		if slices.Contains(seen, field) {
			return "", nil, errors.New("repeated field " + field)
		}
		seen = append(seen, field)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", nil, errors.New("body is not valid JSON")
		}
		switch field {
		case "name":
			rawName = v
		case "key":
			rawKey = v
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return "", nil, errors.New("body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("data after the JSON object")
	}
	if json.Unmarshal(rawName, &name) != nil || name == "" {
		return "", nil, errors.New("name must be a non-empty string")
	}
	if rawKey == nil || string(rawKey) == "null" {
		if keyRequired {
			return "", nil, errors.New("key is required")
		}
		return name, []string{}, nil
	}
	var s string
	if json.Unmarshal(rawKey, &s) != nil {
		return "", nil, errors.New("key must be a string")
	}
	parts, ok := rivet.ParseSerializedKey(s)
	if !ok {
		return "", nil, errors.New("key is not a canonical serialized actor key")
	}
	return name, parts, nil
}
