// Package syncbuf is the project's one output buffer that a process, logger
// or test writes to while another goroutine reads it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent Write and String. The zero
// value is ready to use. With Limit > 0, a Write that finds more than Limit
// bytes already buffered starts over, so a long-running process's output
// stays bounded.
type Buffer struct {
	Limit int

	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Limit > 0 && s.b.Len() > s.Limit {
		s.b.Reset()
	}
	return s.b.Write(p)
}

// String returns what is buffered.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
