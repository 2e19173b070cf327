package cors

import (
	"bufio"
	"net"
	"net/http"
	"strings"
)

// StripUpstream removes from h, an upstream response's header, every
// Access-Control-* header and the CORS pieces of Vary (Origin,
// Access-Control-Request-Method, Access-Control-Request-Headers), keeping the
// rest of Vary. The proxy calls it in ModifyResponse, so that the engine's
// own CORS headers never reach a browser; the Middleware sets the gateway's.
func StripUpstream(h http.Header) {
	for k := range h {
		if len(k) > len("Access-Control-") && strings.EqualFold(k[:len("Access-Control-")], "Access-Control-") {
			delete(h, k)
		}
	}
	vary := h.Values(headerVary)
	if len(vary) == 0 {
		return
	}
	var kept []string
	changed := false
	for _, v := range vary {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			switch {
			case part == "":
			case strings.EqualFold(part, "Origin"),
				strings.EqualFold(part, "Access-Control-Request-Method"),
				strings.EqualFold(part, "Access-Control-Request-Headers"):
				changed = true
			default:
				kept = append(kept, part)
			}
		}
	}
	switch {
	case !changed:
	case len(kept) == 0:
		h.Del(headerVary)
	default:
		h.Set(headerVary, strings.Join(kept, ", "))
	}
}

// responseWriter sets the policy's CORS headers on the response to an
// allowed origin just before the header is written, replacing whatever the
// wrapped handler (or the upstream it copies) put there. It keeps
// http.Flusher and http.Hijacker working and unwraps for
// http.ResponseController.
type responseWriter struct {
	http.ResponseWriter
	policy *Policy
	origin string
	done   bool // the CORS headers are set
}

func (w *responseWriter) apply() {
	if !w.done {
		w.done = true
		w.policy.setActual(w.ResponseWriter.Header(), w.origin)
	}
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational answer (103 Early Hints): not the response, but
		// it must not carry the upstream's CORS headers either.
		StripUpstream(w.ResponseWriter.Header())
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.apply()
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.apply()
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher; a Flush before WriteHeader sends the
// header, so the CORS headers are set first.
func (w *responseWriter) Flush() {
	w.apply()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker. httputil.ReverseProxy hijacks a WebSocket
// upgrade and then writes the 101 itself from Header(): the CORS headers are
// set before it copies the upstream's (stripped) ones in.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.apply()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
