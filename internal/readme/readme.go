// Package readme reads the repository's README.md for the tests that keep
// it true: its configuration examples are decoded, validated and run as
// written, and its reference lists are checked against the code.
package readme

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Path is the README's path, found from this file's location so that any
// package's tests can read it whatever their working directory.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "README.md")
}

// Read returns the README.
func Read() (string, error) {
	b, err := os.ReadFile(Path())
	return string(b), err
}

// YAMLBlock returns the first ```yaml block after heading, a whole line of
// the README such as "### Actors on Cloudflare Workers".
func YAMLBlock(heading string) (string, error) {
	text, err := Read()
	if err != nil {
		return "", err
	}
	_, section, ok := strings.Cut(text, "\n"+heading+"\n")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		return "", fmt.Errorf("README.md: no YAML block under %q", heading)
	}
	return block, nil
}

// YAMLBlocks returns every ```yaml block of the README, in order.
func YAMLBlocks() ([]string, error) {
	text, err := Read()
	if err != nil {
		return nil, err
	}
	parts := strings.Split(text, "```yaml\n")[1:]
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		block, _, _ := strings.Cut(p, "```")
		out = append(out, block)
	}
	return out, nil
}
