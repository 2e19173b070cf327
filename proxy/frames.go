package proxy

import (
	"encoding/binary"
	"errors"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// errMessageTooBig is returned by frameParser.feed when a data message grows
// past the read limit.
var errMessageTooBig = errors.New("websocket message exceeds the read limit")

// errProtocol is returned by frameParser.feed, when strict is set, for a
// frame header RFC 6455 (section 5) tells the receiver to fail the
// connection for: a client frame not masked or a server frame masked, a
// reserved bit set (no extension is negotiated through the gateway), an
// unknown opcode, a fragmented or over-long control frame, a continuation
// with no message to continue or a new message inside a fragmented one.
var errProtocol = errors.New("websocket frame breaks RFC 6455")

// frameParser follows a WebSocket byte stream frame by frame without
// buffering payloads, so the proxy can count messages, enforce a message
// size limit before the payload is read, see close frames, and know where
// frame boundaries are (to inject its own control frames safely).
//
// Before the stream starts, the HTTP handshake passes through: with
// handshake set, bytes up to and including the blank line that ends the
// HTTP head are skipped.
type frameParser struct {
	handshake bool
	crlf      int // progress through "\r\n\r\n" while in the handshake
	headN     int // bytes of the HTTP head seen
	status    [3]byte

	hdr     [14]byte
	hn, hdl int // header bytes collected, header length (0 until known)

	inPayload bool
	plen      uint64 // payload length of the frame in progress
	remain    uint64
	opcode    byte
	fin       bool
	masked    bool
	mask      [4]byte
	maskPos   int

	ctl  [125]byte
	ctlN int

	// strict makes feed check each frame header (errProtocol); fromClient
	// says which side the stream comes from (its frames must be masked).
	strict, fromClient bool
	fragmented         bool // a data message has begun and not finished

	dataOp   byte  // opcode of the data message in progress
	msgBytes int64 // payload bytes of the data message in progress
	limit    int64 // 0: no limit

	// Totals: data messages completed and their payload bytes.
	messages int64
	bytes    int64

	closeSeen   bool
	closeCode   int
	closeReason string
	// dataSeen is set once a data frame has started: the peer has sent
	// more than control frames.
	dataSeen bool

	// resume is set with a limit error: the offset in p just past the
	// offending frame's header. Feeding p[resume:] next keeps the parser in
	// step with the stream (to find a later close frame, say).
	resume int
}

// skipHead consumes the HTTP head at the start of p while handshake is
// set, and returns how many bytes of p belonged to it: what follows is the
// WebSocket stream (or, for a refused upgrade, the response body).
func (f *frameParser) skipHead(p []byte) int {
	i := 0
	for i < len(p) && f.handshake {
		c := p[i]
		i++
		if f.headN >= 9 && f.headN < 12 { // "HTTP/1.1 101"
			f.status[f.headN-9] = c
		}
		f.headN++
		switch {
		case c == "\r\n\r\n"[f.crlf]:
			f.crlf++
			if f.crlf == 4 {
				f.handshake = false
			}
		case c == '\r':
			f.crlf = 1
		default:
			f.crlf = 0
		}
	}
	return i
}

// switched reports whether the HTTP head skipped was a 101 response: what
// follows it is a WebSocket stream, not an error body.
func (f *frameParser) switched() bool {
	return !f.handshake && f.headN > 0 && string(f.status[:]) == "101"
}

// atBoundary reports whether the stream is between frames, so a control
// frame may be inserted.
func (f *frameParser) atBoundary() bool {
	return !f.handshake && !f.inPayload && f.hn == 0
}

// feed consumes p. It returns len(p) and nil, or, when a data frame would
// take its message past the limit, the offset in p where that frame began
// (0 if it began in an earlier call) and errMessageTooBig; then the parser
// has read the frame's header, up to p[resume], and not counted the frame.
func (f *frameParser) feed(p []byte) (int, error) { return f.scan(p, false) }

// feedFrame is feed, but stops just past the end of the frame in progress
// (or, between frames, of the next one): the relay decides frame by frame
// what it passes on. The frame has ended when the parser is atBoundary.
func (f *frameParser) feedFrame(p []byte) (int, error) { return f.scan(p, true) }

func (f *frameParser) scan(p []byte, stop bool) (int, error) {
	i := 0
	frameStart := 0
	for i < len(p) {
		if f.handshake {
			i += f.skipHead(p[i:])
			frameStart = i
			continue
		}
		if !f.inPayload {
			if f.hn == 0 {
				frameStart = i
			}
			for i < len(p) && (f.hn < 2 || f.hn < f.hdl) {
				f.hdr[f.hn] = p[i]
				f.hn++
				i++
				if f.hn == 2 {
					f.hdl = 2
					switch f.hdr[1] & 0x7f {
					case 126:
						f.hdl += 2
					case 127:
						f.hdl += 8
					}
					if f.hdr[1]&0x80 != 0 {
						f.hdl += 4
					}
				}
			}
			if f.hn < 2 || f.hn < f.hdl {
				return len(p), nil // header continues in the next chunk
			}
			if err := f.startFrame(); err != nil {
				f.resume = i
				return frameStart, err
			}
			if f.remain == 0 {
				f.endFrame()
				if stop {
					return i, nil
				}
			}
			continue
		}
		k := len(p) - i
		if uint64(k) > f.remain {
			k = int(f.remain)
		}
		if isControl(f.opcode) {
			for _, c := range p[i : i+k] {
				if f.masked {
					c ^= f.mask[f.maskPos&3]
					f.maskPos++
				}
				if f.ctlN < len(f.ctl) {
					f.ctl[f.ctlN] = c
					f.ctlN++
				}
			}
		}
		i += k
		f.remain -= uint64(k)
		if f.remain == 0 {
			f.endFrame()
			if stop {
				return i, nil
			}
		}
	}
	return len(p), nil
}

func isControl(op byte) bool { return op >= opClose }

func (f *frameParser) startFrame() error {
	b0, b1 := f.hdr[0], f.hdr[1]
	f.fin = b0&0x80 != 0
	f.opcode = b0 & 0x0f
	f.masked = b1&0x80 != 0
	n := uint64(b1 & 0x7f)
	off := 2
	switch n {
	case 126:
		n = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
		off = 4
	case 127:
		n = binary.BigEndian.Uint64(f.hdr[2:10])
		off = 10
	}
	if f.masked {
		copy(f.mask[:], f.hdr[off:off+4])
	}
	f.maskPos = 0
	f.ctlN = 0
	f.plen = n
	f.remain = n
	f.inPayload = n > 0
	f.hn, f.hdl = 0, 0
	if f.strict && !f.validHeader(b0, n) {
		return errProtocol
	}
	if !isControl(f.opcode) {
		f.fragmented = !f.fin
		f.dataSeen = true
		if f.opcode != opContinuation {
			f.dataOp = f.opcode
			f.msgBytes = 0
		}
		if f.limit > 0 && (n > uint64(f.limit) || f.msgBytes+int64(n) > f.limit) {
			return errMessageTooBig
		}
		f.msgBytes += int64(n)
		f.bytes += int64(n)
	}
	return nil
}

// validHeader reports whether the frame header just read (first byte b0,
// payload length n) is one a WebSocket endpoint accepts; see errProtocol.
func (f *frameParser) validHeader(b0 byte, n uint64) bool {
	switch {
	case b0&0x70 != 0, f.masked != f.fromClient:
		return false
	case isControl(f.opcode):
		return f.opcode <= opPong && f.fin && n <= 125
	case f.opcode > opBinary:
		return false
	default:
		return (f.opcode == opContinuation) == f.fragmented
	}
}

// endFrame completes the current frame.
func (f *frameParser) endFrame() {
	f.inPayload = false
	switch {
	case !isControl(f.opcode):
		if f.fin {
			f.messages++
			f.msgBytes = 0
		}
	case f.opcode == opClose:
		f.closeSeen = true
		f.closeCode = 1005 // no status received
		f.closeReason = ""
		if f.ctlN >= 2 {
			f.closeCode = int(binary.BigEndian.Uint16(f.ctl[:2]))
			f.closeReason = string(f.ctl[2:f.ctlN])
		}
	}
}

// appendControlFrame appends a control frame with payload (≤125 bytes),
// masked with key when masked is set (frames a client sends must be).
func appendControlFrame(dst []byte, op byte, payload []byte, masked bool, key [4]byte) []byte {
	b1 := byte(len(payload))
	if masked {
		b1 |= 0x80
	}
	dst = append(dst, 0x80|op, b1)
	if !masked {
		return append(dst, payload...)
	}
	dst = append(dst, key[:]...)
	for i, c := range payload {
		dst = append(dst, c^key[i&3])
	}
	return dst
}
