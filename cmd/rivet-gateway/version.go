package main

import "runtime/debug"

// version is stamped by the build: `make build` passes
// -ldflags "-X main.version=$(git describe --tags --always --dirty)", and
// the image (deploy/Dockerfile) its VERSION build arg. A build without
// -ldflags (go install, go build, go run) leaves it empty: buildVersion
// then reports what the Go toolchain recorded in the binary.
var version string

// buildVersion is the version -version prints and the start-up log line
// carries.
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(version, bi)
}

// versionOf returns stamped when it is set. Otherwise it reads bi (nil
// when the binary has no build information): the main module's version
// (v1.2.3 for `go install .../cmd/rivet-gateway@v1.2.3`; in a git
// checkout, since Go 1.24, one derived from the tags and commit, with
// +dirty for uncommitted changes), else the commit the build recorded
// (vcs.revision, shortened to 12 characters as Go's pseudo-versions do,
// and -dirty when vcs.modified), else "(devel)", Go's own name for an
// unversioned build (built with -buildvcs=false outside a module version).
func versionOf(stamped string, bi *debug.BuildInfo) string {
	if stamped != "" {
		return stamped
	}
	if bi == nil {
		return "(devel)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "-dirty"
	}
	return rev
}
