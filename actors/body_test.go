package actors

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

func TestParseBody(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		keyRequired bool
		wantName    string
		wantKey     []string
		wantErr     string // substring; "" when accepted
	}{
		// Accepted.
		{name: "name and key", body: `{"name":"counter","key":"bob"}`, wantName: "counter", wantKey: []string{"bob"}},
		{name: "put with key", body: `{"name":"counter","key":"bob"}`, keyRequired: true, wantName: "counter", wantKey: []string{"bob"}},
		{name: "post without key", body: `{"name":"counter"}`, wantName: "counter", wantKey: []string{}},
		{name: "post with null key", body: `{"name":"counter","key":null}`, wantName: "counter", wantKey: []string{}},
		{name: "post with null key and spaces", body: `{"name":"counter","key": null }`, wantName: "counter", wantKey: []string{}},
		{name: "empty key", body: `{"name":"counter","key":"/"}`, keyRequired: true, wantName: "counter", wantKey: []string{}},
		{name: "multi-part key", body: `{"name":"chat","key":"room/1"}`, wantName: "chat", wantKey: []string{"room", "1"}},
		{name: "escaped slash in key", body: `{"name":"chat","key":"a\\/b"}`, wantName: "chat", wantKey: []string{"a/b"}},
		{name: "escaped backslash in key", body: `{"name":"chat","key":"a\\\\b"}`, wantName: "chat", wantKey: []string{`a\b`}},
		{name: "empty part", body: `{"name":"chat","key":"\\0"}`, wantName: "chat", wantKey: []string{""}},
		{name: "json escapes in key", body: `{"name":"chat","key":"\u0072oom\/1"}`, wantName: "chat", wantKey: []string{"room", "1"}},
		{name: "escaped field name", body: `{"n\u0061me":"counter"}`, wantName: "counter", wantKey: []string{}},
		{name: "escaped key field name", body: `{"name":"counter","\u006bey":"bob"}`, wantName: "counter", wantKey: []string{"bob"}},
		{name: "every field", body: `{"datacenter":"dc1","name":"counter","key":"bob","input":"aGk=","runner_name_selector":"default","crash_policy":"sleep"}`,
			keyRequired: true, wantName: "counter", wantKey: []string{"bob"}},
		{name: "input any JSON", body: `{"name":"counter","input":{"name":"evil","key":"admin","nested":[1,{"key":null}]}}`, wantName: "counter", wantKey: []string{}},
		{name: "input null", body: `{"input":null,"name":"counter"}`, wantName: "counter", wantKey: []string{}},
		{name: "whitespace", body: " \t\r\n{ \"name\" : \"counter\" ,\n\"key\" : \"bob\" } \n", wantName: "counter", wantKey: []string{"bob"}},
		{name: "unicode", body: `{"name":"зчётчик","key":"ключ/🔑"}`, wantName: "зчётчик", wantKey: []string{"ключ", "🔑"}},
		{name: "field order", body: `{"key":"bob","name":"counter"}`, wantName: "counter", wantKey: []string{"bob"}},

		// Refused.
		{name: "empty body", body: ``, wantErr: "not a JSON object"},
		{name: "null", body: `null`, wantErr: "not a JSON object"},
		{name: "array", body: `[{"name":"counter"}]`, wantErr: "not a JSON object"},
		{name: "string", body: `"counter"`, wantErr: "not a JSON object"},
		{name: "empty object", body: `{}`, wantErr: "name"},
		{name: "duplicate name", body: `{"name":"a","name":"b"}`, wantErr: "repeated field name"},
		{name: "duplicate name escaped", body: `{"name":"a","n\u0061me":"b"}`, wantErr: "repeated field name"},
		{name: "duplicate key", body: `{"name":"a","key":"x","key":"y"}`, wantErr: "repeated field key"},
		{name: "duplicate input", body: `{"name":"a","input":"x","input":"y"}`, wantErr: "repeated field input"},
		{name: "upper-case name", body: `{"NAME":"x"}`, wantErr: "unknown field"},
		{name: "title-case name", body: `{"Name":"x"}`, wantErr: "unknown field"},
		{name: "case variant beside name", body: `{"name":"a","Name":"b"}`, wantErr: "unknown field"},
		{name: "case variant of key", body: `{"name":"a","KEY":"b"}`, wantErr: "unknown field"},
		{name: "kelvin sign name", body: `{"name":"a","\u212aey":"b"}`, wantErr: "unknown field"},
		{name: "unknown field", body: `{"name":"a","namespace":"other"}`, wantErr: "unknown field"},
		{name: "empty field name", body: `{"name":"a","":"b"}`, wantErr: "unknown field"},
		{name: "trailing object", body: `{"name":"x"} {}`, wantErr: "data after"},
		{name: "trailing garbage", body: `{"name":"x"}x`, wantErr: "data after"},
		{name: "trailing bracket", body: `{"name":"x"}]`, wantErr: "data after"},
		{name: "second object", body: `{"name":"x"}{"name":"y"}`, wantErr: "data after"},
		{name: "unterminated", body: `{"name":"x"`, wantErr: "not valid JSON"},
		{name: "trailing comma", body: `{"name":"x",}`, wantErr: "not valid JSON"},
		{name: "missing colon", body: `{"name" "x"}`, wantErr: "not valid JSON"},
		{name: "single quotes", body: `{'name':'x'}`, wantErr: "not valid JSON"},
		{name: "comment", body: `{"name":"x" /* c */}`, wantErr: "not valid JSON"},
		{name: "number field name", body: `{1:"x"}`, wantErr: "not valid JSON"},
		{name: "invalid UTF-8 in name", body: "{\"name\":\"a\xffb\"}", wantErr: "UTF-8"},
		{name: "invalid UTF-8 in key", body: "{\"name\":\"a\",\"key\":\"\xc3\"}", wantErr: "UTF-8"},
		{name: "invalid UTF-8 in input", body: "{\"name\":\"a\",\"input\":\"\xed\xa0\x80\"}", wantErr: "UTF-8"},
		{name: "byte order mark", body: "\ufeff{\"name\":\"a\"}", wantErr: "not a JSON object"},
		{name: "name missing", body: `{"key":"bob"}`, wantErr: "name"},
		{name: "name empty", body: `{"name":""}`, wantErr: "name"},
		{name: "name null", body: `{"name":null}`, wantErr: "name"},
		{name: "name number", body: `{"name":1}`, wantErr: "name"},
		{name: "name bool", body: `{"name":true}`, wantErr: "name"},
		{name: "name list", body: `{"name":["counter"]}`, wantErr: "name"},
		{name: "name object", body: `{"name":{"counter":1}}`, wantErr: "name"},
		{name: "put without key", body: `{"name":"counter"}`, keyRequired: true, wantErr: "key is required"},
		{name: "put with null key", body: `{"name":"counter","key":null}`, keyRequired: true, wantErr: "key is required"},
		{name: "key list", body: `{"name":"counter","key":["bob"]}`, wantErr: "key must be a string"},
		{name: "key number", body: `{"name":"counter","key":1}`, wantErr: "key must be a string"},
		{name: "key object", body: `{"name":"counter","key":{}}`, wantErr: "key must be a string"},
		{name: "key empty string", body: `{"name":"counter","key":""}`, wantErr: "canonical"},
		{name: "key non-canonical backslash", body: `{"name":"counter","key":"a\\b"}`, wantErr: "canonical"},
		{name: "key trailing slash", body: `{"name":"counter","key":"a/"}`, wantErr: "canonical"},
		{name: "key empty part", body: `{"name":"counter","key":"a//b"}`, wantErr: "canonical"},
		{name: "key escaped zero in a part", body: `{"name":"counter","key":"a\\0"}`, wantErr: "canonical"},
		{name: "invalid value", body: `{"name":"counter","input":nul}`, wantErr: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, key, err := ParseBody([]byte(tt.body), tt.keyRequired)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got name %q, key %q, want an error mentioning %q", name, key, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got error %q, want it to mention %q", err, tt.wantErr)
				}
				if name != "" || key != nil {
					t.Errorf("got name %q, key %q with the error, want none", name, key)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want name %q, key %q", err, tt.wantName, tt.wantKey)
			}
			if name != tt.wantName || !reflect.DeepEqual(key, tt.wantKey) {
				t.Errorf("got name %q, key %#v, want %q, %#v", name, key, tt.wantName, tt.wantKey)
			}
		})
	}
}

// TestMiddlewareBody runs POST and PUT /actors through the Middleware: the
// body's actor is appended and the body handed on unchanged.
func TestMiddlewareBody(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		body      string
		chunked   bool // no Content-Length
		limit     int64
		wantActor rivet.Actor
		wantErr   *rivet.Error
	}{
		{name: "post", method: http.MethodPost, body: `{"name":"counter","key":"bob","input":"aGk=","runner_name_selector":"default","crash_policy":"sleep"}`,
			wantActor: rivet.Actor{Namespace: "default", Name: "counter", Key: []string{"bob"}}},
		{name: "post keyless", method: http.MethodPost, body: `{"name":"counter"}`,
			wantActor: rivet.Actor{Namespace: "default", Name: "counter", Key: []string{}}},
		{name: "put", method: http.MethodPut, body: "{\n  \"name\": \"chat\",\n  \"key\": \"room/1\"\n}\n",
			wantActor: rivet.Actor{Namespace: "default", Name: "chat", Key: []string{"room", "1"}}},
		{name: "put chunked", method: http.MethodPut, chunked: true, body: `{"name":"chat","key":"room/1"}`,
			wantActor: rivet.Actor{Namespace: "default", Name: "chat", Key: []string{"room", "1"}}},
		{name: "body at the limit", method: http.MethodPost, limit: int64(len(`{"name":"counter"}`)), body: `{"name":"counter"}`,
			wantActor: rivet.Actor{Namespace: "default", Name: "counter", Key: []string{}}},
		{name: "chunked body at the limit", method: http.MethodPost, chunked: true, limit: int64(len(`{"name":"counter"}`)), body: `{"name":"counter"}`,
			wantActor: rivet.Actor{Namespace: "default", Name: "counter", Key: []string{}}},
		{name: "body over the limit", method: http.MethodPost, limit: int64(len(`{"name":"counter"}`)) - 1, body: `{"name":"counter"}`,
			wantErr: rivet.ErrRequestTooLarge},
		{name: "chunked body over the limit", method: http.MethodPost, chunked: true, limit: int64(len(`{"name":"counter"}`)) - 1, body: `{"name":"counter"}`,
			wantErr: rivet.ErrRequestTooLarge},
		{name: "put without key", method: http.MethodPut, body: `{"name":"counter"}`, wantErr: rivet.ErrInvalidRequest},
		{name: "duplicate name", method: http.MethodPost, body: `{"name":"a","name":"b"}`, wantErr: rivet.ErrInvalidRequest},
		{name: "case variant", method: http.MethodPost, body: `{"NAME":"x"}`, wantErr: rivet.ErrInvalidRequest},
		{name: "trailing data", method: http.MethodPost, body: `{"name":"x"} {}`, wantErr: rivet.ErrInvalidRequest},
		{name: "non-canonical key", method: http.MethodPut, body: `{"name":"x","key":"a\\b"}`, wantErr: rivet.ErrInvalidRequest},
		{name: "empty body", method: http.MethodPost, body: ``, wantErr: rivet.ErrInvalidRequest},
		{name: "not JSON", method: http.MethodPost, body: `name=counter`, wantErr: rivet.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(t)
			r, _, o := newResolver(t, e, func(c *Config) {
				if tt.limit > 0 {
					c.MaxBodyBytes = tt.limit
				}
			})
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = iotest.OneByteReader(strings.NewReader(tt.body)) // no length known
			}
			req := httptest.NewRequest(tt.method, "/actors?namespace=default", body)
			if tt.chunked {
				req.ContentLength, req.TransferEncoding = -1, []string{"chunked"}
			}
			s := serve(t, r, req)
			if got := e.calls.Load(); got != 0 {
				t.Errorf("got %d engine lookups, want 0", got)
			}
			if got := o.results(); len(got) != 0 {
				t.Errorf("got observed %q, want none (no id looked up)", got)
			}
			if tt.wantErr != nil {
				wantRejection(t, s, tt.wantErr)
				return
			}
			if s.rec.Code != http.StatusNoContent || !s.next {
				t.Fatalf("got status %d (next ran: %v), want 204 from next; body %s", s.rec.Code, s.next, s.rec.Body)
			}
			if string(s.body) != tt.body {
				t.Errorf("next got body %q, want %q", s.body, tt.body)
			}
			if s.contentLength != int64(len(tt.body)) {
				t.Errorf("next got ContentLength %d, want %d", s.contentLength, len(tt.body))
			}
			if len(s.transferEncoding) != 0 {
				t.Errorf("next got TransferEncoding %q, want none", s.transferEncoding)
			}
			if !s.rt.Resolved || !reflect.DeepEqual(s.rt.Actors, []rivet.Actor{tt.wantActor}) {
				t.Errorf("got Resolved %v, Actors %+v, want true, [%+v]", s.rt.Resolved, s.rt.Actors, tt.wantActor)
			}
			// The route keeps what it named: create routes name no actor
			// of their own.
			if s.rt.ActorName != "" || s.rt.Key != nil || s.rt.Namespace != "default" {
				t.Errorf("got ActorName %q, Key %q, Namespace %q, want \"\", nil, default", s.rt.ActorName, s.rt.Key, s.rt.Namespace)
			}
		})
	}
}

// TestMiddlewareBodyDeclaredTooLarge: a Content-Length over the limit is
// refused before anything is read.
func TestMiddlewareBodyDeclaredTooLarge(t *testing.T) {
	r, _, _ := newResolver(t, newFakeEngine(t), func(c *Config) { c.MaxBodyBytes = 16 })
	reads := 0
	body := readerFunc(func(p []byte) (int, error) { reads++; return 0, io.EOF })
	req := httptest.NewRequest(http.MethodPost, "/actors?namespace=default", body)
	req.ContentLength = 17
	wantRejection(t, serve(t, r, req), rivet.ErrRequestTooLarge)
	if reads != 0 {
		t.Errorf("got %d body reads, want 0", reads)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestMiddlewareBodyReadError: a body that fails while read (the client
// went away) is answered 499 and goes no further.
func TestMiddlewareBodyReadError(t *testing.T) {
	r, _, _ := newResolver(t, newFakeEngine(t), nil)
	body := io.MultiReader(strings.NewReader(`{"name":`), iotest.ErrReader(io.ErrUnexpectedEOF))
	req := httptest.NewRequest(http.MethodPost, "/actors?namespace=default", body)
	req.ContentLength = -1
	s := serve(t, r, req)
	if s.rec.Code != rivet.StatusClientClosedRequest || s.next {
		t.Errorf("got status %d (next ran: %v), want 499 without next", s.rec.Code, s.next)
	}
}

// TestMiddlewareBodyOverHTTP sends create requests to a real server (the
// Middleware after classification, in front of a handler that echoes what
// it got), chunked and with a length, and one over the limit.
func TestMiddlewareBodyOverHTTP(t *testing.T) {
	checkGoroutines(t)
	r, _, _ := newResolver(t, newFakeEngine(t), func(c *Config) { c.MaxBodyBytes = 64 })
	type seen struct {
		body          []byte
		contentLength int64
		actors        []rivet.Actor
	}
	got := make(chan seen, 1)
	h := r.Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		got <- seen{b, req.ContentLength, rivet.RouteFrom(req.Context()).Actors}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rt, err := rivet.ParseRequest(req)
		if err != nil {
			rivet.WriteError(w, req, err)
			return
		}
		h.ServeHTTP(w, req.WithContext(rivet.WithRoute(req.Context(), &rt)))
	}))
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(srv.Close)

	const body = `{"name":"chat","key":"room/1"}`
	want := []rivet.Actor{{Namespace: "default", Name: "chat", Key: []string{"room", "1"}}}
	for _, chunked := range []bool{false, true} {
		var rd io.Reader = strings.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // hides the length: sent chunked
		}
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/actors?namespace=default", rd)
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("chunked %v: got status %d, want 204", chunked, res.StatusCode)
		}
		s := <-got
		if string(s.body) != body || s.contentLength != int64(len(body)) || !reflect.DeepEqual(s.actors, want) {
			t.Errorf("chunked %v: next got body %q, ContentLength %d, Actors %+v, want %q, %d, %+v",
				chunked, s.body, s.contentLength, s.actors, body, len(body), want)
		}
	}

	big := `{"name":"chat","key":"room/1","input":"` + strings.Repeat("x", 64) + `"}`
	for _, chunked := range []bool{false, true} {
		var rd io.Reader = strings.NewReader(big)
		if chunked {
			rd = io.MultiReader(rd)
		}
		res, err := client.Post(srv.URL+"/actors?namespace=default", "application/json", rd)
		if err != nil {
			// The server may close the connection once the limit is hit,
			// before the client has sent everything.
			if errors.Is(err, io.EOF) || isConnReset(err) {
				continue
			}
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(b, []byte(`"request_too_large"`)) {
			t.Errorf("chunked %v: got %d %s, want 413 gateway.request_too_large", chunked, res.StatusCode, b)
		}
	}
	select {
	case s := <-got:
		t.Errorf("next ran for a body over the limit: %q", s.body)
	default:
	}
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}
