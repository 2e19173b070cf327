package rivetclient

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

// The CBOR encoding sends the messages of the JSON shape as CBOR maps, with
// values as CBOR compat trees. Messages going out are written by
// appendCBOR; messages coming in are read by fxamacker/cbor (well-formedness,
// nesting and size limits on bytes from the network) and turned into
// compat JSON, then read as JSON messages are.

type cborCodec struct{}

func (cborCodec) encoding() Encoding { return EncodingCBOR }
func (cborCodec) binary() bool       { return true }

// cborText appends a CBOR text string.
func cborText(b []byte, s string) []byte {
	return append(appendCBORHead(b, 3, uint64(len(s))), s...)
}

// cborBool appends a CBOR boolean.
func cborBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xf5)
	}
	return append(b, 0xf4)
}

// compatToCBOR encodes a compat JSON value as CBOR.
func compatToCBOR(b []byte, raw json.RawMessage) ([]byte, error) {
	tree, err := parseTree(raw)
	if err != nil {
		return nil, err
	}
	return appendCBOR(b, tree)
}

// cborEnvelope appends {"body":{"tag":tag,"val":<map head of n pairs>}}
// up to the val's pairs.
func cborEnvelope(tag string, n uint64) []byte {
	b := make([]byte, 0, 64)
	b = cborText(appendCBORHead(b, 5, 1), "body")
	b = cborText(cborText(appendCBORHead(b, 5, 2), "tag"), tag)
	return appendCBORHead(cborText(b, "val"), 5, n)
}

func (cborCodec) actionRequest(id uint64, name string, args json.RawMessage) ([]byte, error) {
	b := cborEnvelope("ActionRequest", 3)
	b = appendCBORHead(cborText(b, "id"), 0, id)
	b = cborText(cborText(b, "name"), name)
	return compatToCBOR(cborText(b, "args"), args)
}

func (cborCodec) subscriptionRequest(event string, subscribe bool) []byte {
	b := cborEnvelope("SubscriptionRequest", 2)
	b = cborText(cborText(b, "eventName"), event)
	return cborBool(cborText(b, "subscribe"), subscribe)
}

func (cborCodec) toClient(data []byte) (toClientMessage, error) {
	j, err := cborToJSON(data)
	if err != nil {
		return toClientMessage{}, fmt.Errorf("rivetclient: malformed message: %w", err)
	}
	return jsonCodec{}.toClient(j)
}

func (cborCodec) httpActionRequest(args json.RawMessage) ([]byte, error) {
	return compatToCBOR(cborText(appendCBORHead(nil, 5, 1), "args"), args)
}

func (cborCodec) httpActionResponse(data []byte) (json.RawMessage, error) {
	j, err := cborToJSON(data)
	if err != nil {
		return nil, err
	}
	return jsonCodec{}.httpActionResponse(j)
}

func (cborCodec) queueSendRequest(q queueSend) ([]byte, error) {
	n := uint64(3)
	if q.timeoutMs != nil {
		n++
	}
	b, err := compatToCBOR(cborText(appendCBORHead(nil, 5, n), "body"), q.body)
	if err != nil {
		return nil, err
	}
	b = cborText(cborText(b, "name"), q.name)
	b = cborBool(cborText(b, "wait"), q.wait)
	if q.timeoutMs != nil {
		b = appendCBORInt(cborText(b, "timeout"), *q.timeoutMs)
	}
	return b, nil
}

func (cborCodec) queueSendResponse(data []byte) (SendResult, error) {
	j, err := cborToJSON(data)
	if err != nil {
		return SendResult{}, err
	}
	return jsonCodec{}.queueSendResponse(j)
}

func (cborCodec) httpError(data []byte) (*ActorError, bool) {
	j, err := cborToJSON(data)
	if err != nil {
		return nil, false
	}
	return jsonCodec{}.httpError(j)
}

// cborDecMode reads CBOR from the network. Maps decode to map[any]any so
// that non-string keys (a JavaScript Map) are not an error; byte strings
// to []byte; integers outside int64/uint64 to big.Int. Element counts are
// not limited beyond what the bytes hold (a well-formed item cannot claim
// more elements than it has bytes), so that a large value decodes in CBOR
// as it does in JSON; nesting is.
var cborDecMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  256,
		MaxArrayElements: math.MaxInt32,
		MaxMapPairs:      math.MaxInt32,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthAllowed,
		BigIntDec:        cbor.BigIntDecodeValue,
		IntDec:           cbor.IntDecConvertNone,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// cborToJSON turns one CBOR data item into JSON: byte strings become
// ["$Uint8Array","<base64>"] (what encodeJsonCompatValue writes for them),
// big integers their digits, NaN and infinities null (as JSON.stringify
// writes them), tags their content; map keys are sorted.
func cborToJSON(data []byte) (json.RawMessage, error) {
	var v any
	if err := cborDecMode.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return appendCBORValueJSON(nil, v)
}

func appendCBORValueJSON(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case big.Int:
		return v.Append(b, 10), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return append(b, "null"...), nil
		}
		j, err := json.Marshal(v)
		return append(b, j...), err
	case string:
		j, err := json.Marshal(v)
		return append(b, j...), err
	case []byte:
		b = append(b, `["$Uint8Array","`...)
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, `"]`...), nil
	case []any:
		b = append(b, '[')
		for i, it := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendCBORValueJSON(b, it); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[any]any:
		keys := make([]string, 0, len(v))
		vals := make(map[string]any, len(v))
		for k, it := range v {
			ks, err := cborKey(k)
			if err != nil {
				return nil, err
			}
			if _, dup := vals[ks]; dup {
				return nil, fmt.Errorf("duplicate map key %q", ks)
			}
			keys = append(keys, ks)
			vals[ks] = it
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			kj, _ := json.Marshal(k) // marshalling a string cannot fail
			b = append(append(b, kj...), ':')
			var err error
			if b, err = appendCBORValueJSON(b, vals[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case cbor.Tag:
		return appendCBORValueJSON(b, v.Content)
	case cbor.SimpleValue:
		return append(b, "null"...), nil
	}
	return nil, fmt.Errorf("unsupported CBOR value %T", v)
}

// cborKey is the JSON object key of a CBOR map key: text as is, numbers
// as their decimal text (as JavaScript turns them into property names).
func cborKey(k any) (string, error) {
	switch k := k.(type) {
	case string:
		return k, nil
	case uint64:
		return strconv.FormatUint(k, 10), nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	}
	return "", errors.New("unsupported CBOR map key")
}
