package rivet

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// guardRoute is how the engine's guard reads a request target.
type guardRoute struct {
	gateway, query, err bool
	id, name, ns        string
	key                 []string
	rest                string
}

// guardParse is guard's parse_actor_path (engine 2.3.19,
// engine/packages/guard/src/routing/actor_path.rs) ported line by line: the
// oracle FuzzParseTarget compares ParseTarget with.
func guardParse(target string) guardRoute {
	if i := strings.IndexByte(target, '#'); i >= 0 {
		target = target[:i]
	}
	base, query, _ := strings.Cut(target, "?")
	if strings.Contains(base, "//") {
		return guardRoute{}
	}
	var segs []string
	for _, s := range strings.Split(base, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 || segs[0] != "gateway" {
		return guardRoute{}
	}
	rest := func() string { // build_remaining_path: skip /gateway/<seg>
		r := base[1+len(segs[0])+1+len(segs[1]):]
		if r == "" {
			r = "/"
		}
		return r
	}
	hasRvt := false
	for _, part := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(part, "="); strings.HasPrefix(k, "rvt-") {
			hasRvt = true
		}
	}
	if hasRvt {
		if len(segs) < 2 || strings.Contains(segs[1], "@") {
			return guardRoute{gateway: true, err: true}
		}
		name, ok := urlencodingDecode(segs[1])
		if !ok {
			return guardRoute{gateway: true, err: true}
		}
		vals := map[string]string{}
		for _, part := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(part, "=")
			if !strings.HasPrefix(k, "rvt-") {
				continue
			}
			if _, dup := vals[k]; dup || !slices.Contains(rvtKeys, k) {
				return guardRoute{gateway: true, err: true}
			}
			d, ok := urlencodingDecode(strings.ReplaceAll(v, "+", " "))
			if !ok {
				return guardRoute{gateway: true, err: true}
			}
			vals[k] = d
		}
		m, hasM := vals["rvt-method"]
		ns, hasNS := vals["rvt-namespace"]
		if !hasM || !hasNS || m != "get" && m != "getOrCreate" {
			return guardRoute{gateway: true, err: true}
		}
		key := []string{}
		if k := vals["rvt-key"]; k != "" {
			key = strings.Split(k, ",")
		}
		return guardRoute{gateway: true, query: true, name: name, ns: ns, key: key, rest: rest()}
	}
	if len(segs) < 2 {
		return guardRoute{}
	}
	idPart, tok, hasTok := strings.Cut(segs[1], "@")
	if idPart == "" || hasTok && tok == "" {
		return guardRoute{}
	}
	raw, ok1 := urlencodingDecode(idPart)
	_, ok2 := urlencodingDecode(tok)
	if !ok1 || !ok2 {
		return guardRoute{}
	}
	id, ok := CanonicalActorID(raw)
	if !ok {
		return guardRoute{gateway: true, err: true}
	}
	return guardRoute{gateway: true, id: id, rest: rest()}
}

// urlencodingDecode is the urlencoding crate's decode: %XX escapes decoded,
// malformed ones kept as they are, the result required to be UTF-8.
func urlencodingDecode(s string) (string, bool) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b), utf8.Valid(b)
}

// FuzzParseTarget checks ParseTarget against guard's own reading: whatever
// the gateway accepts, guard routes to the same actor (same id, or same
// namespace, name and key) with the same path, and the actor's URL
// normalization leaves that path as it is.
func FuzzParseTarget(f *testing.F) {
	seeds := []string{
		"/health", "/metadata?namespace=default", "/actors?namespace=default&name=counter&key=bob",
		"/actors/hwzdj7sr4l7y4lxlvc506jrjwtal00?namespace=default",
		"/gateway/hwzdj7sr4l7y4lxlvc506jrjwtal00@secret-tok/action/increment",
		"/gateway/HWZDJ7SR4L7Y4LXLVC506JRJWTAL00/request/inspector/state",
		"/gateway/counter/action/getCount?rvt-namespace=default&rvt-method=get&rvt-key=a%2Cb&rvt-token=t",
		"/gateway/counter/request/hello/world?x=1&rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k",
		"/gateway/my%40actor/queue/q?rvt-namespace=n&rvt-method=get",
		"/gateway/a@b@c/connect?rvt-token&&rvt-token=x&y",
		"/gateway//x?rvt-method=get&rvt-method=get",
		"/gateway/x/../hwzdj7sr4l7y4lxlvc506jrjwtal00/action/x",
		"/gateway/counter/action/x?rvt-namespace=default&rvt-method=get&%72vt-key=bob",
		"/gateway/hwzdj7sr4l7y4lxlvc506jrjwtal00#/x/action/y",
	}
	for _, s := range seeds {
		f.Add(http.MethodPost, s, false)
		f.Add(http.MethodGet, s, true)
	}
	f.Fuzz(func(t *testing.T, method, target string, ws bool) {
		rt, err := ParseTarget(method, target, ws)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 {
				t.Fatalf("ParseTarget(%q): error %v is not a RivetKit-shaped 4xx", target, err)
			}
			return
		}
		g := guardParse(target)
		if !strings.HasPrefix(target, "/gateway/") {
			if g.gateway {
				t.Fatalf("ParseTarget(%q) took it for an API route; guard routes it to an actor", target)
			}
			return
		}
		switch {
		case !g.gateway || g.err:
			t.Fatalf("ParseTarget(%q) accepted %+v; guard does not route it (%+v)", target, rt, g)
		case g.query != (rt.ActorID == ""):
			t.Fatalf("ParseTarget(%q): query target %v, guard %v", target, rt.ActorID == "", g.query)
		case g.query && (g.name != rt.ActorName || g.ns != rt.Namespace || !slices.Equal(g.key, rt.Key)):
			t.Fatalf("ParseTarget(%q) = %s/%s%q; guard reads %s/%s%q", target, rt.Namespace, rt.ActorName, rt.Key, g.ns, g.name, g.key)
		case !g.query && (g.id != rt.ActorID || !slices.Equal(rt.IDs, []string{g.id})):
			t.Fatalf("ParseTarget(%q) = id %q; guard reads id %q", target, rt.ActorID, g.id)
		case g.rest != rt.Rest:
			t.Fatalf("ParseTarget(%q): rest %q; guard forwards %q", target, rt.Rest, g.rest)
		}
		// What the actor's WHATWG normalization would change.
		for _, seg := range strings.Split(rt.Rest, "/") {
			if d := strings.ReplaceAll(strings.ToLower(seg), "%2e", "."); d == "." || d == ".." {
				t.Fatalf("ParseTarget(%q) accepted a dot segment", target)
			}
		}
		if strings.Contains(rt.Rest, "\\") || strings.Contains(rt.Rest, "//") {
			t.Fatalf("ParseTarget(%q) accepted a path the actor rewrites", target)
		}
		if rt.Intent == IntentRequest && strings.HasPrefix(strings.TrimPrefix(rt.Rest, "/request"), "/inspector/") {
			t.Fatalf("ParseTarget(%q): the actor serves its inspector here, not onRequest", target)
		}
	})
}

func FuzzASCIIJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "été", "😀", "\xff\xfe", "\xed\xa0\x80", "a\u2028b", "\U0010FFFF", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// A Go value: MarshalASCII must decode to what json.Marshal does.
		v := map[string]any{"s": s, "list": []string{s, s + "x"}, s: 1}
		ascii, err := MarshalASCII(v)
		if err != nil {
			t.Fatalf("MarshalASCII: %v", err)
		}
		plain, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		checkSameJSON(t, plain, ascii)

		// A document with raw (possibly invalid) UTF-8 inside a string.
		doc := []byte(`{"k":"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(stripControls(s)) + `"}`)
		if json.Valid(doc) {
			checkSameJSON(t, doc, ASCIIJSON(doc))
		}
	})
}

func stripControls(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 {
			return -1
		}
		return r
	}, s)
}

// FuzzConnParams checks that what SetConnParams writes is what ConnParams
// (and the engine's form decoding) reads back, for both carriers.
func FuzzConnParams(f *testing.F) {
	for _, p := range hardParams {
		f.Add(p, "rivet, rivet_encoding.json, rivet_conn_params.old")
	}
	f.Fuzz(func(t *testing.T, params, protocols string) {
		for _, ws := range []bool{false, true} {
			h := http.Header{}
			h.Set(HeaderWebSocketProtocol, protocols)
			before := Subprotocols(h)
			err := SetConnParams(h, ws, []byte(params), DialectCurrent, 0)
			if err != nil {
				if !ws || !errors.Is(err, ErrParamsTooLarge) {
					t.Fatalf("SetConnParams(websocket=%v): got error %v", ws, err)
				}
				if got := Subprotocols(h); !slices.Equal(got, before) {
					t.Fatalf("subprotocols changed on error: got %q, want %q", got, before)
				}
				continue
			}
			if !ws {
				// Header values are sent as they are (callers pass ASCII
				// JSON); only check the value is the one written.
				if got := h.Values(HeaderConnParams); len(got) != 1 || got[0] != params {
					t.Fatalf("header: got %q, want [%q]", got, params)
				}
				continue
			}
			raw, found, err := ConnParams(&http.Request{Header: h}, ws)
			if err != nil || !found || string(raw) != params {
				t.Fatalf("ConnParams: got %q, %v, %v; want %q, true, nil", raw, found, err, params)
			}
			list := Subprotocols(h)
			var kept []string
			for _, p := range before {
				if !strings.HasPrefix(p, ProtocolConnParamsPrefix) {
					kept = append(kept, p)
				}
			}
			if !slices.Equal(list[:len(list)-1], kept) {
				t.Fatalf("other subprotocols: got %q, want %q", list[:len(list)-1], kept)
			}
			enc := strings.TrimPrefix(list[len(list)-1], ProtocolConnParamsPrefix)
			if dec, err := url.QueryUnescape(enc); err != nil || dec != params {
				t.Fatalf("engine decoding of %q: got %q, %v; want %q", enc, dec, err, params)
			}
		}
	})
}

// FuzzSubprotocols: any Sec-WebSocket-Protocol header list reads back as
// trimmed, non-empty entries without commas; writing them back reads back the
// same list; stripping a prefix removes exactly the entries that have it.
func FuzzSubprotocols(f *testing.F) {
	for _, s := range []string{
		"rivet, rivet_encoding.json, rivet_conn_params.%7B%7D",
		"rivet_encoding.bare",
		" , ,rivet,,",
		"rivet_conn_params.a,rivet_conn_params.b",
		"rivet\t,\x00, rivet_token.x",
		"rivet_conn_params.%7B%22a%22%3A%22%2C%22%7D",
	} {
		f.Add(s, "rivet_", "rivet_conn_params.")
	}
	f.Fuzz(func(t *testing.T, first, second, prefix string) {
		h := http.Header{}
		h.Add(HeaderWebSocketProtocol, first)
		h.Add(HeaderWebSocketProtocol, second)
		list := Subprotocols(h)
		for _, p := range list {
			if p == "" || strings.Contains(p, ",") || strings.TrimSpace(p) != p {
				t.Fatalf("Subprotocols(%q, %q): bad entry %q in %q", first, second, p, list)
			}
		}
		again := http.Header{}
		SetSubprotocols(again, list)
		if got := Subprotocols(again); !slices.Equal(got, list) {
			t.Fatalf("SetSubprotocols(%q) reads back %q", list, got)
		}
		if prefix == "" {
			return
		}
		var want []string
		for _, p := range list {
			if !strings.HasPrefix(p, prefix) {
				want = append(want, p)
			}
		}
		StripSubprotocols(h, prefix)
		if got := Subprotocols(h); !slices.Equal(got, want) {
			t.Fatalf("StripSubprotocols(%q, %q): got %q, want %q", list, prefix, got, want)
		}
	})
}

// FuzzCheckConnParams: what CheckConnParams accepts, ConnParams reads
// unambiguously as JSON; what it rejects is a second carrier, a bad escape
// or not JSON.
func FuzzCheckConnParams(f *testing.F) {
	f.Add(`{"token":"t"}`, "", true)
	f.Add("rivet, rivet_conn_params.%7B%7D", "", true)
	f.Add("rivet_conn_params.%zz", "", true)
	f.Add("rivet_conn_params.1, rivet_conn_params.2", "", true)
	f.Add(`{"a":1}`, `{"a":2}`, false)
	f.Add("notjson", "", false)
	f.Add("{\"a\":\"\xff\"}", "", false)
	f.Fuzz(func(t *testing.T, first, second string, ws bool) {
		r := &http.Request{Header: http.Header{}}
		name := HeaderConnParams
		if ws {
			name = HeaderWebSocketProtocol
		}
		for _, v := range []string{first, second} {
			if v != "" {
				r.Header.Add(name, v)
			}
		}
		err := CheckConnParams(r, ws)
		if err != nil {
			if !errors.Is(err, ErrInvalidConnParams) {
				t.Fatalf("CheckConnParams: error %v does not wrap ErrInvalidConnParams", err)
			}
			return
		}
		raw, found, err := ConnParams(r, ws)
		if err != nil {
			t.Fatalf("accepted, but ConnParams fails: %v", err)
		}
		if found && !json.Valid(raw) {
			t.Fatalf("accepted, but ConnParams reads %q, which is not JSON", raw)
		}
		if ws {
			n := 0
			for _, p := range Subprotocols(r.Header) {
				if strings.HasPrefix(p, ProtocolConnParamsPrefix) {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("accepted %d rivet_conn_params entries", n)
			}
		} else if vals := r.Header.Values(HeaderConnParams); len(vals) > 1 {
			t.Fatalf("accepted %d x-rivet-conn-params headers", len(vals))
		}
	})
}

// FuzzErrorShape: whatever group, code, message and metadata an error
// carries, the HTTP answer is one JSON object RivetKit parses back to the
// same group and code, and the WebSocket close reason fits a close frame.
func FuzzErrorShape(f *testing.F) {
	f.Add("guard", "no_route", "No route.", "reason", "x", false)
	f.Add("client", "get_params_failed", "", "attempts", "\xff", true)
	f.Add(strings.Repeat("g", 100), strings.Repeat("c", 100), "m", "", "", true)
	f.Add("ws", "going_away#ray", "é", "k\x00", "\u2028", false)
	f.Fuzz(func(t *testing.T, group, code, message, key, value string, retryable bool) {
		e := &Error{Status: 400, Group: group, Code: code, Message: message, Retryable: retryable}
		if key != "" {
			e = e.With(key, value)
		}
		if r := e.Reason(); len(r) > maxCloseReason {
			t.Fatalf("Reason() is %d bytes, more than a close frame allows", len(r))
		} else if retryable && !RetryableReason(r) {
			t.Fatalf("retryable error closes with %q, which RivetKit does not retry", r)
		}
		rec := httptest.NewRecorder()
		WriteHTTPError(rec, nil, e)
		var body map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q is not one JSON object: %v", rec.Body.Bytes(), err)
		}
		var g, c string
		_ = json.Unmarshal(body["group"], &g)
		_ = json.Unmarshal(body["code"], &c)
		if g != asJSONString(group) || c != asJSONString(code) {
			t.Fatalf("body %s: group %q code %q, want %q %q", rec.Body.Bytes(), g, c, group, code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || rec.Code != 400 {
			t.Fatalf("answer %d %q, want 400 application/json", rec.Code, ct)
		}
	})
}

// asJSONString is s as it reads back from encoding/json (invalid UTF-8
// replaced byte by byte).
func asJSONString(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}
