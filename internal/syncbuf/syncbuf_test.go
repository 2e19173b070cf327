package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestConcurrentWritesAndLimit(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("ab"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("ab", 400) {
		t.Fatalf("got %d bytes, want 800", len(got))
	}

	l := Buffer{Limit: 4}
	for _, s := range []string{"abc", "de", "f"} { // "abcde" is over the limit when "f" comes
		_, _ = l.Write([]byte(s))
	}
	if got := l.String(); got != "f" {
		t.Fatalf("limited buffer: got %q, want f", got)
	}
}
