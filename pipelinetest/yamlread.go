package pipelinetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/internal/spelling"
)

// reader walks a test file's YAML tree, collecting every problem with the
// position of the node at fault, so one run reports them all.
type reader struct {
	file string
	errs config.Errors
}

func (r *reader) pos(n *yaml.Node) config.Pos {
	return config.Pos{File: r.file, Line: n.Line, Col: n.Column}
}

func (r *reader) add(n *yaml.Node, format string, args ...any) {
	pos := config.Pos{File: r.file}
	if n != nil {
		pos = r.pos(n)
	}
	r.errs = append(r.errs, &config.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads the single YAML document of data; nil (with a problem
// recorded) when there is none.
func (r *reader) parse(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 reports its errors by panicking and recovering; one that
		// escapes is a parser bug, which must not take the command down.
		if v := recover(); v != nil {
			root = nil
			r.add(nil, "invalid YAML: the parser failed: %v", v)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			r.add(nil, "the test file is empty: want pipeline and cases")
			return nil
		}
		r.syntaxError(err, data)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		r.syntaxError(err, data)
		return nil
	default:
		r.add(&next, "a test file holds one YAML document; remove this \"---\" and what follows")
		return nil
	}
	if len(doc.Content) == 0 {
		r.add(nil, "the test file is empty: want pipeline and cases")
		return nil
	}
	return doc.Content[0]
}

func (r *reader) syntaxError(err error, data []byte) {
	msg := err.Error()
	pos := config.Pos{File: r.file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pos.Line, _ = strconv.Atoi(m[1])
		pos.Line = faultLine(data, pos.Line)
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	r.errs = append(r.errs, &config.Error{Pos: pos, Msg: "invalid YAML: " + msg})
}

// faultLine finds the line a syntax error is on. yaml.v3 reports the line
// where the enclosing construct starts, and counts parser errors from 0;
// the shortest prefix of the file, from that line on, that no longer
// parses ends on the line at fault. The search is bounded: in a large file
// the reported line stands.
func faultLine(data []byte, reported int) int {
	const maxScan, maxSize = 200, 64 << 10
	if len(data) > maxSize || reported < 1 {
		return reported
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for k := reported; k <= len(lines) && k < reported+maxScan; k++ {
		if !parses(bytes.Join(lines[:k], nil)) {
			return k
		}
	}
	return reported
}

func parses(data []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		switch err := dec.Decode(&n); {
		case errors.Is(err, io.EOF):
			return true
		case err != nil:
			return false
		}
	}
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && hops < 8; hops++ {
		n = n.Alias
	}
	return n
}

// entry is one key of a mapping.
type entry struct {
	key   string
	keyAt *yaml.Node
	val   *yaml.Node
}

// mapping returns n's entries in file order, checking each key against
// known (when given). what names n in messages.
func (r *reader) mapping(n *yaml.Node, what string, known []string) []entry {
	n = deref(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		r.add(n, "%s: want a mapping, got %s", what, describe(n))
		return nil
	}
	var out []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.add(k, "%s: a key must be a plain name, not %s", what, describe(k))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			r.add(k, "%s: duplicate key %q (first at line %d)", what, k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		if known != nil && !slices.Contains(known, k.Value) {
			hint := ""
			if s := spelling.Nearest(k.Value, known); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			r.add(k, "%s: unknown key %q%s", what, k.Value, hint)
			continue
		}
		out = append(out, entry{key: k.Value, keyAt: n.Content[i], val: v})
	}
	return out
}

func (r *reader) sequence(n *yaml.Node, what string) []*yaml.Node {
	n = deref(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.add(n, "%s: want a list, got %s", what, describe(n))
		return nil
	}
	return n.Content
}

// scalar returns the text of a scalar; ok is false (and a problem is
// recorded) for a list or mapping.
func (r *reader) scalar(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		r.add(n, "%s: want a single value, got %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

// str is a scalar that must be a string: quoting makes anything one, so an
// unquoted number or boolean is taken as its text.
func (r *reader) str(n *yaml.Node, what string) (string, bool) {
	s, ok := r.scalar(n, what)
	if ok && isNull(deref(n)) {
		r.add(n, "%s: want a string, got null", what)
		return "", false
	}
	return s, ok
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "an alias"
}

const maxJSONDepth = 64

// toJSON encodes a YAML value as JSON, keeping mapping keys in the order
// written: a stage sees the value as the test's author wrote it.
func toJSON(n *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	err := writeJSON(&b, n, 0)
	return b.Bytes(), err
}

func writeJSON(b *bytes.Buffer, n *yaml.Node, depth int) error {
	n = deref(n)
	if depth > maxJSONDepth {
		return fmt.Errorf("nested more than %d levels deep", maxJSONDepth)
	}
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a JSON object key must be a plain name, not %s", k.Line, describe(k))
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k.Value)
			b.WriteByte(':')
			if err := writeJSON(b, n.Content[i+1], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, c, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		return writeScalar(b, n)
	default:
		return fmt.Errorf("line %d: cannot be written as JSON", n.Line)
	}
	return nil
}

func writeScalar(b *bytes.Buffer, n *yaml.Node) error {
	switch n.ShortTag() {
	case "!!null":
		b.WriteString("null")
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("line %d: %v", n.Line, err)
		}
		data, err := marshal(v)
		if err != nil {
			return fmt.Errorf("line %d: %s cannot be written as JSON", n.Line, n.Value)
		}
		b.Write(data)
	default: // strings, and dates or binary as their text
		writeString(b, n.Value)
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) {
	data, _ := marshal(s) // a string always encodes
	b.Write(data)
}
