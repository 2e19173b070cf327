package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// FuzzRewriteMetadata: whatever /metadata answer the engine sends (body,
// status, content type), rewriteMetadata never panics; a JSON object comes
// out as a JSON object without the keys that would make a RivetKit client
// bypass the gateway (clientEndpoint, clientNamespace, clientToken),
// everything else unchanged, with a Content-Length that matches; anything
// else is refused with guard.service_unavailable. 204 and 304 answers have
// no body and pass as they are.
func FuzzRewriteMetadata(f *testing.F) {
	for _, body := range []string{
		`{"runtime":"engine","version":"2.3.19","envoy_protocol_version":8}`,
		`{"clientEndpoint":"https://elsewhere.example","clientNamespace":"ns","clientToken":"secret","runtime":"engine"}`,
		`{"client\u0045ndpoint":"x","clientToken":1,"clientToken":2}`,
		`{"a":{"clientEndpoint":"nested stays"},"clientToken":null}`,
		`["clientEndpoint"]`, `"clientEndpoint"`, `null`, `{}`, `{"clientEndpoint":`, "not json", "",
		"{\"clientToken\":\"\xff\xfe\"}",
	} {
		f.Add([]byte(body), true, uint16(http.StatusOK))
	}
	f.Add([]byte(`{"clientEndpoint":"x"}`), false, uint16(http.StatusOK))
	f.Add([]byte(`{"clientEndpoint":"x"}`), true, uint16(http.StatusInternalServerError))
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool, status uint16) {
		ct := "text/plain"
		if isJSON {
			ct = "application/json"
		}
		res := &http.Response{
			StatusCode:    int(status),
			Header:        http.Header{"Content-Type": {ct}},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
		}
		var in map[string]json.RawMessage
		object := json.Unmarshal(body, &in) == nil && in != nil
		err := rewriteMetadata(res)
		if status == http.StatusNoContent || status == http.StatusNotModified {
			// No body on the wire (net/http drops one): passed as it is.
			if err != nil {
				t.Fatalf("rewriteMetadata with status %d: %v, want passed", status, err)
			}
			return
		}
		if len(body) > maxMetadataBytes {
			if err == nil {
				t.Fatalf("rewriteMetadata of a %d-byte body: got nil, want an error", len(body))
			}
			return
		}
		if !object {
			if !errors.Is(err, rivet.ErrUpstreamUnavailable) {
				t.Fatalf("rewriteMetadata(%q) (status %d, %s): got %v, want guard.service_unavailable", body, status, ct, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("rewriteMetadata(%q) (status %d, %s): %v", body, status, ct, err)
		}
		out, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(len(out)) || res.ContentLength != int64(len(out)) {
			t.Fatalf("Content-Length %q / %d for a %d-byte body", cl, res.ContentLength, len(out))
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil || got == nil {
			t.Fatalf("a JSON object %q came out as %q, not an object: %v", body, out, err)
		}
		for _, k := range metadataBypassKeys {
			if _, ok := got[k]; ok {
				t.Fatalf("%q still has %s: %q", body, k, out)
			}
			delete(in, k)
		}
		if len(got) != len(in) {
			t.Fatalf("keys lost or added: %q -> %q", body, out)
		}
		for k, v := range in {
			var a, b any
			if json.Unmarshal(v, &a) != nil || json.Unmarshal(got[k], &b) != nil || !jsonEqual(a, b) {
				t.Fatalf("value of %q changed: %s -> %s", k, v, got[k])
			}
		}
	})
}

// jsonEqual compares decoded JSON values.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// FuzzUpgradeFailure: whatever the engine answers a WebSocket upgrade with
// (status, body) or however the dial failed, upgradeFailure never panics
// and returns a RivetKit error the gateway can close the socket with: a
// group and a code, an error status, and a close reason that is valid
// UTF-8 of at most 123 bytes in "group.code" form. An engine error in the
// transient list becomes the retryable guard.service_unavailable.
func FuzzUpgradeFailure(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{400, `{"group":"actor","code":"no_runner_config_configured","message":"No runner config with name 'default'.","metadata":{"namespace":"default","pool_name":"default"}}`},
		{400, `{"group":"namespace","code":"not_found","message":"The namespace does not exist."}`},
		{404, `{"group":"actor","code":"not_found","message":"Actor not found."}`},
		{500, `{"group":"core","code":"internal_error","message":"x"}`},
		{200, `{"group":"actor","code":"x"}`},
		{101, `{"group":"a","code":"b"}`},
		{502, "<h1>bad gateway</h1>"},
		{400, `{"group":"a.b","code":"c#d"}`},
		{400, `{"GROUP":"x","Code":"y"}`},
		{403, "{\"group\":\"\xff\",\"code\":\"x\"}"},
		{0, ""},
		{99999, `{"group":"g","code":"c"}`},
		{-1, ""},
	} {
		f.Add(s.status, []byte(s.body), uint8(0))
	}
	for kind := range uint8(6) {
		f.Add(0, []byte(nil), kind)
	}
	dialErrs := []error{
		nil,
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
		os.ErrDeadlineExceeded,
		io.EOF,
		context.Canceled,
		errors.New("tls: handshake failure"),
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, dialKind uint8) {
		hw := &hijackWriter{}
		if status != 0 {
			hw.WriteHeader(status)
		}
		if len(body) > 0 {
			_, _ = hw.Write(body)
		}
		dialErr := dialErrs[int(dialKind)%len(dialErrs)]
		e := upgradeFailure(dialErr, hw, DefaultTransientErrors)
		if e == nil {
			t.Fatal("nil error")
		}
		if e.Group == "" || e.Code == "" {
			t.Fatalf("error without group or code: %+v", e)
		}
		if e.Status < 400 {
			t.Fatalf("status %d for engine status %d, body %q, dial error %v", e.Status, status, body, dialErr)
		}
		r := e.Reason()
		if len(r) > 123 || !utf8.ValidString(r) || r != e.Group+"."+e.Code && !e.Retryable {
			t.Fatalf("close reason %q for %+v", r, e)
		}
		var eng struct{ Group, Code string }
		if json.Unmarshal(body, &eng) == nil && slices.Contains(DefaultTransientErrors, eng.Group+"."+eng.Code) && hw.status != 0 {
			if !rivet.RetryableReason(r) || e.Metadata["upstream_error"] != eng.Group+"."+eng.Code {
				t.Fatalf("transient engine error %s.%s: got %q, metadata %v", eng.Group, eng.Code, r, e.Metadata)
			}
		}
	})
}
