package rivet

// Header names RivetKit clients and the engine use today (x-rivet-*), and the
// legacy X-RivetKit-* dialect of older RivetKit releases.
const (
	HeaderConnParams = "X-Rivet-Conn-Params"
	HeaderEncoding   = "X-Rivet-Encoding"
	HeaderToken      = "X-Rivet-Token"
	HeaderRayID      = "X-Rivet-Ray-Id"
	HeaderError      = "X-Rivet-Error"
	HeaderActor      = "X-Rivet-Actor"
	HeaderTarget     = "X-Rivet-Target"

	// HeaderLegacyConnParams is the conn-params header of RivetKit before
	// September 2025 (rivetkit#1293). Today's engine ignores it.
	HeaderLegacyConnParams = "X-RivetKit-Conn-Params"

	HeaderWebSocketProtocol = "Sec-WebSocket-Protocol"
)

// AllowedPublicHeaders is RivetKit 2.3.19's ALLOWED_PUBLIC_HEADERS (without
// its duplicate entry) followed by the legacy X-RivetKit-* request headers:
// the headers a browser RivetKit client may send cross-origin.
var AllowedPublicHeaders = []string{
	"Content-Type",
	"User-Agent",
	"x-rivet-query",
	"x-rivet-encoding",
	"x-rivet-conn-params",
	"x-rivet-actor",
	"x-rivet-actor-generation",
	"x-rivet-actor-key",
	"x-rivet-target",
	"x-rivet-namespace",
	"x-rivet-token",
	"x-rivet-skip-ready-wait",
	"X-RivetKit-Query",
	"X-RivetKit-Encoding",
	"X-RivetKit-Conn-Params",
	"X-RivetKit-Actor",
	"X-RivetKit-Conn",
	"X-RivetKit-Conn-Token",
}
