package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// FuzzParseBody: ParseBody never panics, and a body it accepts is a valid
// JSON object whose name is the non-empty name returned and whose key (when
// present and not null) is exactly the serialized form of the key returned.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"counter","key":"bob"}`,
		`{"name":"counter"}`,
		`{"name":"counter","key":null}`,
		`{"name":"chat","key":"room/1","input":{"a":[1,2,{"b":null}]}}`,
		`{"name":"chat","key":"a\\/b/\\0/c\\\\d"}`,
		`{"n\u0061me":"counter","\u006bey":"/"}`,
		`{"name":"a","name":"b"}`,
		`{"NAME":"x"}`,
		`{"name":"x"} {}`,
		`{"name":"x","key":"a\\b"}`,
		`{"datacenter":"dc","name":"x","key":"k","input":"aGk=","runner_name_selector":"default","crash_policy":"sleep"}`,
		"{\"name\":\"\xff\"}",
		`{"name":"\ud800","key":"\udc00"}`,
		` {"name" : "x" } `,
		``,
		`[]`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, keyRequired bool) {
		orig := bytes.Clone(body)
		name, key, err := ParseBody(body, keyRequired)
		if !bytes.Equal(body, orig) {
			t.Fatalf("ParseBody changed its input: got %q, want %q", body, orig)
		}
		if err != nil {
			if name != "" || key != nil {
				t.Fatalf("got name %q, key %q with error %v, want none", name, key, err)
			}
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("accepted a body that is not valid UTF-8 JSON: %q", body)
		}
		if name == "" {
			t.Fatalf("accepted %q with an empty name", body)
		}
		if key == nil {
			t.Fatalf("accepted %q with a nil key, want empty (not nil) for none", body)
		}
		// Accepted bodies have no repeated fields, so a map reads them
		// exactly; field names may be spelled with escapes.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("accepted %q, which is not a JSON object: %v", body, err)
		}
		for _, k := range slices.Sorted(maps.Keys(fields)) { // sorted: coverage must not depend on map order
			if !slices.Contains(bodyFields, k) {
				t.Fatalf("accepted %q with unknown field %q", body, k)
			}
		}
		var gotName string
		if err := json.Unmarshal(fields["name"], &gotName); err != nil || gotName != name {
			t.Fatalf("accepted %q: got name %q, body says %q (%v)", body, name, gotName, err)
		}
		rawKey, hasKey := fields["key"]
		if !hasKey || string(rawKey) == "null" {
			if keyRequired {
				t.Fatalf("accepted %q without a key where one is required", body)
			}
			if len(key) != 0 {
				t.Fatalf("accepted %q without a key: got key %q, want empty", body, key)
			}
			return
		}
		var s string
		if err := json.Unmarshal(rawKey, &s); err != nil {
			t.Fatalf("accepted %q whose key is not a string: %v", body, err)
		}
		if got := rivet.SerializeKey(key); got != s {
			t.Fatalf("accepted %q: SerializeKey(%q) = %q, want the body's key %q", body, key, got, s)
		}
	})
}

// FuzzResolveAnswer feeds arbitrary engine answers (status and body) to a
// lookup of idBob: it never panics, and the result is bob's id found, or
// ErrNotFound, ErrUnavailable or ErrUnclassifiable. What a lookup found or
// did not find is then answered the same from the cache.
func FuzzResolveAnswer(f *testing.F) {
	f.Add(http.StatusOK, []byte(bobAnswer))
	f.Add(http.StatusOK, []byte(emptyAnswer))
	f.Add(http.StatusBadRequest, []byte(unknownNamespaceAnswer))
	f.Add(http.StatusOK, []byte(strings.Replace(bobAnswer, idBob, strings.ToUpper(idBob), 1)))
	f.Add(http.StatusOK, []byte(strings.Replace(bobAnswer, idBob, idAlice, 1)))
	f.Add(http.StatusOK, []byte(actorAnswer(idBob, "counter", ptr(`a\b`))))
	f.Add(http.StatusOK, []byte(actorAnswer(idBob, "counter", ptr(`a\/b/\0`))))
	f.Add(http.StatusOK, []byte(actorAnswer(idBob, "counter", nil)))
	f.Add(http.StatusOK, []byte(`{"actors":[{"actor_id":"`+idBob+`","name":"counter","key":"/"},{"actor_id":"`+idBob+`","name":"x","key":"y"}]}`))
	f.Add(http.StatusOK, []byte(`not json`))
	f.Add(http.StatusOK, []byte(`null`))
	f.Add(http.StatusInternalServerError, []byte(`{"group":"core","code":"internal_error"}`))
	f.Add(http.StatusNotFound, []byte(`{"group":"namespace","code":"not_found"}`))
	f.Add(0, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := &fakeEngine{answer: func(string, string) reply { return reply{status: status, body: string(body)} }}
		r, _, _ := newResolver(t, e, nil)
		got, err := r.Resolve(context.Background(), []string{"default"}, idBob)
		switch {
		case err == nil:
			if got.ID != idBob || got.Namespace != "default" || got.Key == nil {
				t.Fatalf("status %d, body %q: got %+v, want actor %s in default with a non-nil key", status, body, got, idBob)
			}
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnavailable), errors.Is(err, ErrUnclassifiable):
			if !reflect.DeepEqual(got, rivet.Actor{}) {
				t.Fatalf("status %d, body %q: got actor %+v with error %v", status, body, got, err)
			}
		default:
			t.Fatalf("status %d, body %q: got error %v, want ErrNotFound, ErrUnavailable or ErrUnclassifiable", status, body, err)
		}
		if got, want := e.closed.Load(), e.calls.Load(); got != want {
			t.Fatalf("got %d answer bodies closed, want %d", got, want)
		}

		// A second lookup: found and not found come from the cache.
		again, err2 := r.Resolve(context.Background(), []string{"default"}, idBob)
		switch {
		case err == nil:
			if err2 != nil || !reflect.DeepEqual(again, got) || e.calls.Load() != 1 {
				t.Fatalf("second lookup: got %+v, %v after %d engine lookups, want the cached %+v", again, err2, e.calls.Load(), got)
			}
		case errors.Is(err, ErrNotFound):
			if !errors.Is(err2, ErrNotFound) || e.calls.Load() != 1 {
				t.Fatalf("second lookup: got %v after %d engine lookups, want the cached ErrNotFound", err2, e.calls.Load())
			}
		default:
			if e.calls.Load() != 2 {
				t.Fatalf("second lookup after %v: got %d engine lookups, want 2 (errors are not cached)", err, e.calls.Load())
			}
		}
	})
}
