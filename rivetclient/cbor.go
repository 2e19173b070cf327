package rivetclient

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// Actor input travels as CBOR: base64url in the rvt-input query parameter
// of getOrCreate gateway URLs, standard base64 in the /actors API. The JS
// client encodes encodeJsonCompatValue(input) with cbor-x, i.e. the compat
// JSON tree, so encoding that tree here yields the same JavaScript value.

// encodeInputCBOR encodes v (any JSON-marshalable Go value, compat types
// allowed) as CBOR.
func encodeInputCBOR(v any) ([]byte, error) {
	raw, err := encodeCompat(v)
	if err != nil {
		return nil, fmt.Errorf("rivetclient: encode input: %w", err)
	}
	b, err := compatToCBOR(nil, raw)
	if err != nil {
		return nil, fmt.Errorf("rivetclient: encode input: %w", err)
	}
	return b, nil
}

func appendCBOR(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, 0xf6), nil
	case bool:
		if v {
			return append(b, 0xf5), nil
		}
		return append(b, 0xf4), nil
	case json.Number:
		return appendCBORNumber(b, string(v))
	case string:
		b = appendCBORHead(b, 3, uint64(len(v)))
		return append(b, v...), nil
	case []any:
		b = appendCBORHead(b, 4, uint64(len(v)))
		var err error
		for _, it := range v {
			if b, err = appendCBOR(b, it); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = appendCBORHead(b, 5, uint64(len(keys)))
		var err error
		for _, k := range keys {
			b = appendCBORHead(b, 3, uint64(len(k)))
			b = append(b, k...)
			if b, err = appendCBOR(b, v[k]); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("rivetclient: cannot CBOR-encode %T", v)
}

func appendCBORNumber(b []byte, s string) ([]byte, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return appendCBORInt(b, i), nil
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return appendCBORHead(b, 0, u), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("rivetclient: invalid number %q", s)
	}
	// A JS number with an integral value is encoded as a CBOR integer by cbor-x.
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return appendCBORInt(b, int64(f)), nil
	}
	b = append(b, 0xfb)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f)), nil
}

func appendCBORInt(b []byte, i int64) []byte {
	if i >= 0 {
		return appendCBORHead(b, 0, uint64(i))
	}
	return appendCBORHead(b, 1, uint64(-1-i))
}

func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}
