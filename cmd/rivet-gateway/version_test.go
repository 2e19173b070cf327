package main

import (
	"bytes"
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	const rev = "0b77108e2c5d4f3a9b1c2d3e4f5a6b7c8d9e0f1a"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-06T04:32:00Z"},
			{Key: "vcs.modified", Value: modified},
		}
	}
	main := func(v string) debug.Module {
		return debug.Module{Path: "github.com/rivet-gateway/rivet-gateway", Version: v}
	}
	tests := []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    string
	}{
		{"stamped by make build", "v0.3.0-4-g0b77108-dirty", &debug.BuildInfo{Main: main("v0.3.0"), Settings: vcs("true")}, "v0.3.0-4-g0b77108-dirty"},
		{"stamped by the image", "v0.3.0", nil, "v0.3.0"},
		{"go install @version", "", &debug.BuildInfo{Main: main("v0.3.0")}, "v0.3.0"},
		{"go build in a checkout, Go 1.24+", "", &debug.BuildInfo{Main: main("v0.3.1-0.20261206043200-0b77108e2c5d+dirty"), Settings: vcs("true")}, "v0.3.1-0.20261206043200-0b77108e2c5d+dirty"},
		{"revision, clean", "", &debug.BuildInfo{Main: main("(devel)"), Settings: vcs("false")}, "0b77108e2c5d"},
		{"revision, modified", "", &debug.BuildInfo{Main: main("(devel)"), Settings: vcs("true")}, "0b77108e2c5d-dirty"},
		{"revision, no main version", "", &debug.BuildInfo{Settings: vcs("false")}, "0b77108e2c5d"},
		{"short revision", "", &debug.BuildInfo{Main: main("(devel)"), Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "1a2b"}}}, "1a2b"},
		{"no vcs information (-buildvcs=false)", "", &debug.BuildInfo{Main: main("(devel)"), Settings: []debug.BuildSetting{{Key: "-trimpath", Value: "true"}}}, "(devel)"},
		{"no build information", "", nil, "(devel)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionOf(tt.stamped, tt.bi); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVersionFlag: -version prints what buildVersion finds.
func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got, want := out.String(), "rivet-gateway "+buildVersion()+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
