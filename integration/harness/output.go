package harness

import (
	"fmt"
	"strings"
)

// maxLineLen caps each quoted log line: the engine logs its whole config on one ~4 KB line.
const maxLineLen = 400

// tail returns the last n lines of s, each cut to maxLineLen bytes.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var b strings.Builder
	if len(lines) > n {
		fmt.Fprintf(&b, "[... %d lines cut ...]\n", len(lines)-n)
		lines = lines[len(lines)-n:]
	}
	for _, line := range lines {
		if len(line) > maxLineLen {
			nl := strings.HasSuffix(line, "\n")
			line = line[:maxLineLen] + " [...]"
			if nl {
				line += "\n"
			}
		}
		b.WriteString(line)
	}
	return b.String()
}
