package readme

import (
	"strings"
	"testing"
)

func TestYAMLBlock(t *testing.T) {
	block, err := YAMLBlock("### Actors on Cloudflare Workers")
	if err != nil || !strings.Contains(block, "upstream:") {
		t.Errorf("YAMLBlock(Actors on Cloudflare Workers) = %q, %v; want the example config", block, err)
	}
	if _, err := YAMLBlock("### No such heading"); err == nil {
		t.Errorf("YAMLBlock of a missing heading: got no error")
	}
	blocks, err := YAMLBlocks()
	if err != nil || len(blocks) < 3 {
		t.Errorf("YAMLBlocks: got %d blocks, %v", len(blocks), err)
	}
	for _, b := range blocks {
		if strings.Contains(b, "```") {
			t.Errorf("a block runs past its fence: %q", b)
		}
	}
}
