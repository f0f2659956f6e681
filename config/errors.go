package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is where a config value came from: a place in the pipeline file, or
// an override (an environment variable or a --set flag) named by Origin.
type Pos struct {
	File      string
	Line, Col int
	// Origin is "" for a value read from File, else e.g.
	// "env SLUICE_STAGES__EVEN__EXPR" or "--set stages.even.expr".
	Origin string
}

// String renders the position the way compilers do, so editors can jump
// to it: file:line:col, file:line when the column is unknown (YAML syntax
// errors), file alone for problems of the whole pipeline, or the origin of
// an override.
func (p Pos) String() string {
	switch {
	case p.Origin != "":
		return p.Origin
	case p.Line > 0 && p.Col > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	default:
		return p.File
	}
}

// Error is one problem with a pipeline file.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string {
	if where := e.Pos.String(); where != "" {
		return where + ": " + e.Msg
	}
	return e.Msg
}

// Errors are all the problems found in one pass, so a user fixes them in
// one round instead of one per run.
type Errors []*Error

// Error prints one problem per line, sorted by position.
func (es Errors) Error() string {
	sorted := es.normalize()
	lines := make([]string, len(sorted))
	for i, e := range sorted {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es *Errors) add(pos Pos, format string, args ...any) {
	*es = append(*es, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// normalize sorts by position and drops exact repeats: the same problem can
// be found twice (an anchor expanded by two aliases), and is worth reading
// once.
func (es Errors) normalize() Errors {
	out := slices.Clone(es)
	slices.SortStableFunc(out, compareErrors)
	return slices.CompactFunc(out, func(a, b *Error) bool { return *a == *b })
}

func compareErrors(a, b *Error) int {
	// File positions first, in reading order; then overrides; problems of
	// the whole file (no line) last, as they summarise.
	rank := func(p Pos) int {
		switch {
		case p.Origin != "":
			return 1
		case p.Line == 0:
			return 2
		}
		return 0
	}
	return cmp.Or(
		cmp.Compare(rank(a.Pos), rank(b.Pos)),
		cmp.Compare(a.Pos.File, b.Pos.File),
		cmp.Compare(a.Pos.Line, b.Pos.Line),
		cmp.Compare(a.Pos.Col, b.Pos.Col),
		cmp.Compare(a.Pos.Origin, b.Pos.Origin),
		cmp.Compare(a.Msg, b.Msg),
	)
}

// err returns the sorted problems as an error, or nil when there are none.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es.normalize()
}
