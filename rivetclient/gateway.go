package rivetclient

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// How the JS client addresses actors through the engine gateway
// (engine-client/actor-websocket-client.ts buildActorGatewayUrl and
// buildActorQueryGatewayUrl), reproduced byte for byte.

type targetKind int

const (
	targetID targetKind = iota
	targetGet
	targetGetOrCreate
)

// target is what a handle addresses: an actor id, or a name and key.
type target struct {
	kind targetKind
	name string
	id   string
	key  []string
}

func (t target) dynamic() bool { return t.kind != targetID }

func (t target) String() string {
	switch t.kind {
	case targetID:
		return t.name + "#" + t.id
	case targetGet:
		return fmt.Sprintf("get %s%q", t.name, t.key)
	}
	return fmt.Sprintf("getOrCreate %s%q", t.name, t.key)
}

// maxQueryInputSize bounds the CBOR-encoded rvt-input (the JS client's
// DEFAULT_MAX_QUERY_INPUT_SIZE).
const maxQueryInputSize = 4 * 1024

// gatewayPath returns the gateway path (with query) for actor path p,
// which starts with '/' and may carry the caller's own query:
//
//	/gateway/<id>[@<token>]<p>
//	/gateway/<name><p>?<user query>&rvt-namespace=…&rvt-method=…[&…]
func (h *Handle) gatewayPath(ep endpoint, p string) (string, error) {
	t := h.target
	if t.kind == targetID {
		if t.id == "" {
			return "", fmt.Errorf("rivetclient: empty actor id")
		}
		s := "/gateway/" + encodeURIComponent(t.id)
		if ep.token != "" {
			s += "@" + encodeURIComponent(ep.token)
		}
		return s + p, nil
	}
	if t.name == "" {
		return "", fmt.Errorf("rivetclient: actor query name must not be empty")
	}
	if ep.namespace == "" {
		return "", fmt.Errorf("rivetclient: actor query namespace must not be empty")
	}
	q := [][2]string{{"rvt-namespace", ep.namespace}}
	if t.kind == targetGet {
		q = append(q, [2]string{"rvt-method", "get"})
		q = appendKeyParam(q, t.key)
	} else {
		pool := h.opts.PoolName
		if pool == "" {
			pool = h.client.poolName
		}
		q = append(q, [2]string{"rvt-method", "getOrCreate"}, [2]string{"rvt-runner", pool})
		q = appendKeyParam(q, t.key)
		if h.opts.CreateWithInput != nil {
			enc, err := encodeInputCBOR(h.opts.CreateWithInput)
			if err != nil {
				return "", err
			}
			if len(enc) > maxQueryInputSize {
				return "", fmt.Errorf("rivetclient: actor query input exceeds %d bytes (%d)", maxQueryInputSize, len(enc))
			}
			q = append(q, [2]string{"rvt-input", base64.RawURLEncoding.EncodeToString(enc)})
		}
		if h.opts.CreateInRegion != "" {
			q = append(q, [2]string{"rvt-region", h.opts.CreateInRegion})
		}
		q = append(q, [2]string{"rvt-crash-policy", "sleep"})
	}
	if ep.token != "" {
		q = append(q, [2]string{"rvt-token", ep.token})
	}
	var qs strings.Builder
	for i, kv := range q {
		if i > 0 {
			qs.WriteByte('&')
		}
		qs.WriteString(formEscape(kv[0]))
		qs.WriteByte('=')
		qs.WriteString(formEscape(kv[1]))
	}
	sep := "?"
	switch {
	case strings.HasSuffix(p, "?") || strings.HasSuffix(p, "&"):
		sep = ""
	case strings.Contains(p, "?"):
		sep = "&"
	}
	return "/gateway/" + encodeURIComponent(t.name) + p + sep + qs.String(), nil
}

// appendKeyParam adds rvt-key: the key parts joined by ',' (no escaping,
// exactly as the JS client), omitted for an empty key.
func appendKeyParam(q [][2]string, key []string) [][2]string {
	if len(key) == 0 {
		return q
	}
	return append(q, [2]string{"rvt-key", strings.Join(key, ",")})
}

// wsURL turns an http(s) URL into the ws(s) URL to dial.
func wsURL(httpURL string) string {
	if rest, ok := strings.CutPrefix(httpURL, "https://"); ok {
		return "wss://" + rest
	}
	if rest, ok := strings.CutPrefix(httpURL, "http://"); ok {
		return "ws://" + rest
	}
	return httpURL
}

// splitUserPath splits a caller's actor path ("a/b?x=1", "/a") into a
// path without leading '/' and the query including '?' (or ""), as the JS
// client's raw fetch and webSocket do. The path is escaped where it is not
// valid in a URL path.
func splitUserPath(p string) (path, query string) {
	path, q, hasQuery := strings.Cut(p, "?")
	path = "/x/" + strings.TrimPrefix(path, "/")
	if u, err := url.Parse(path); err == nil {
		path = u.EscapedPath() // drops a #fragment, as URL parsing does in JS
	} else {
		path = (&url.URL{Path: path}).EscapedPath()
	}
	if hasQuery {
		query = "?" + q
	}
	return strings.TrimPrefix(path, "/x/"), query
}

// encodeURIComponent escapes s like JavaScript's encodeURIComponent.
func encodeURIComponent(s string) string {
	return escapeBytes(s, func(c byte) bool {
		return isAlnum(c) || strings.IndexByte("-_.!~*'()", c) >= 0
	}, false)
}

// formEscape escapes s like URLSearchParams (application/x-www-form-urlencoded):
// space becomes '+'.
func formEscape(s string) string {
	return escapeBytes(s, func(c byte) bool {
		return isAlnum(c) || strings.IndexByte("*-._", c) >= 0
	}, true)
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func escapeBytes(s string, keep func(byte) bool, spacePlus bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case keep(c):
			b.WriteByte(c)
		case spacePlus && c == ' ':
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// serializeActorKey serializes a key for the /actors API like RivetKit's
// serializeActorKey: parts joined by '/', '\' and '/' escaped with '\',
// empty parts as "\0", the empty key as "/".
func serializeActorKey(key []string) string {
	if len(key) == 0 {
		return "/"
	}
	parts := make([]string, len(key))
	for i, p := range key {
		if p == "" {
			parts[i] = `\0`
			continue
		}
		p = strings.ReplaceAll(p, `\`, `\\`)
		parts[i] = strings.ReplaceAll(p, "/", `\/`)
	}
	return strings.Join(parts, "/")
}
