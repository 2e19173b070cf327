package rivetclient

// For the examples' stand-in engine (package rivetclient_test): the
// server's side of the codecs.
var (
	ServerDecode = serverDecode
	ServerEncode = serverEncode
)
