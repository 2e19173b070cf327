package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Hints for values whose format the YAML type does not tell.
const (
	HintDuration  = `write durations as "30s", "5m"`
	HintTimestamp = "RFC 3339, e.g. 2027-01-01T00:00:00Z"
)

// PathError is a problem with the value at a YAML path. The Validate
// methods of the configuration sections return them (joined), so that
// Check can give every problem the line it is on.
type PathError struct {
	// Path is the YAML path, e.g. "auth.jwt.issuers[1].jwks_url".
	Path string
	Err  error
}

// Errorf returns a *PathError for path whose Err is fmt.Errorf(format,
// a...), so %w wraps as usual.
func Errorf(path, format string, a ...any) error {
	return &PathError{Path: path, Err: fmt.Errorf(format, a...)}
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *PathError) Unwrap() error { return e.Err }

// Problem is one thing wrong with a configuration file: where, what, and
// how to write it instead when that is a matter of format.
type Problem struct {
	// Line is the 1-based line of the key or list item at Path or, when
	// the file does not have it, of the closest one enclosing it. 0 when
	// the file has none: the problem is with a default.
	Line int
	// Path is the YAML path, e.g. "auth.jwt.issuers[1].jwks_url"; "" for
	// the document itself, or for a problem that names no path.
	Path string
	// Err is what is wrong.
	Err error
	// Hint says how the value is written (HintDuration, HintTimestamp);
	// "" when the message says enough.
	Hint string
}

// Error reads `line 3: server.read_timeout: got 30, want a duration
// (write durations as "30s", "5m")`.
func (p Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Err.Error())
	if p.Hint != "" {
		fmt.Fprintf(&b, " (%s)", p.Hint)
	}
	return b.String()
}

func (p Problem) Unwrap() error { return p.Err }

// Problems is every problem found in a configuration file, each once,
// sorted by line (those without a line last). As an error it reads one
// problem per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As see each problem's cause (e.g.
// fs.ErrNotExist for a missing referenced file).
func (ps Problems) Unwrap() []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// sort orders ps by line, keeping the order they were found in within a
// line; problems without a line go last.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
}

// dedup removes repeated problems (the same text at the same line, as
// when two checks find the same thing), keeping the first.
func (ps Problems) dedup() Problems {
	type key struct {
		line       int
		path, text string
	}
	seen := make(map[key]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		k := key{p.Line, p.Path, p.Error()}
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

// leaves flattens the tree of joined errors err into its leaves.
func leaves(err error, out []error) []error {
	if err == nil {
		return out
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = leaves(e, out)
		}
		return out
	}
	return append(out, err)
}

// asProblem turns one validation error into a Problem; an error that is
// not a *PathError keeps its whole text and has no path.
func asProblem(err error) Problem {
	var pe *PathError
	if errors.As(err, &pe) {
		return Problem{Path: pe.Path, Err: pe.Err}
	}
	return Problem{Err: err}
}
