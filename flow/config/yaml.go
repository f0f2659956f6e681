package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Bounds on what a pipeline file may hold once aliases are expanded. A
// real pipeline has hundreds of values a few levels deep; a billion-laughs
// document is a few hundred bytes that expands to gigabytes, and the
// layering (koanf deep-copies every value, in time quadratic in the
// nesting) must stay fast on any file that passes.
const (
	maxValues = 200_000
	maxDepth  = 64
)

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads the single YAML document of data into s.root.
func (s *source) parse(data []byte) (errs Errors) {
	defer func() {
		// yaml.v3 reports its own errors by panicking and recovering; a
		// panic that escapes it is a bug in the parser, which must not take
		// `sluice validate` down with it.
		if v := recover(); v != nil {
			errs = Errors{{Pos: Pos{File: s.file}, Msg: fmt.Sprintf("invalid YAML: the parser failed: %v", v)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: reported later as a pipeline without nodes
		}
		return Errors{s.syntaxError(err, data)}
	}
	if len(doc.Content) > 0 {
		s.root = doc.Content[0]
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return Errors{s.syntaxError(err, data)}
	default:
		return Errors{{Pos: s.nodePos(&next), Msg: "a pipeline file holds one YAML document; remove this \"---\" and what follows"}}
	}
	return nil
}

func (s *source) syntaxError(err error, data []byte) *Error {
	msg := err.Error()
	pos := Pos{File: s.file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pos.Line, _ = strconv.Atoi(m[1])
		pos.Line = problemLine(data, pos.Line)
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{Pos: pos, Msg: "invalid YAML: " + msg}
}

// problemLine finds the line a syntax error is on. yaml.v3 reports the
// line where the enclosing construct starts, and for parser errors counts
// it from 0, so "line 1" can mean a problem on line 4. The first prefix of
// the file, from that line on, that no longer parses ends on the line at
// fault (or where an unclosed quote or bracket opens). The search is
// bounded: in a huge file the reported line stands.
func problemLine(data []byte, reported int) int {
	const maxScan, maxSize = 200, 64 << 10
	if len(data) > maxSize || reported < 1 {
		return reported
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for k := reported; k <= len(lines) && k < reported+maxScan; k++ {
		dec := yaml.NewDecoder(bytes.NewReader(bytes.Join(lines[:k], nil)))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return k
			}
		}
	}
	return reported
}

// decoder turns the YAML tree into the plain maps koanf layers, reporting
// what yaml.v3's own decoder would (duplicate keys, recursive aliases,
// alias bombs) in linear time: yaml.v3 checks duplicate keys pairwise,
// which a large mapping turns into a hang.
type decoder struct {
	src        *source
	errs       *Errors
	budget     int // values left to decode
	depth      int
	aliasDepth int
	expanding  map[*yaml.Node]bool
	tooDeep    bool
}

func (s *source) decode(errs *Errors) any {
	if s.root == nil {
		return nil
	}
	d := &decoder{src: s, errs: errs, budget: maxValues, expanding: map[*yaml.Node]bool{}}
	return d.value(s.root)
}

func (d *decoder) value(n *yaml.Node) any {
	d.budget--
	switch {
	case d.budget == 0 && d.aliasDepth > 0:
		d.errs.add(d.src.nodePos(n), "aliases expand to more than %d values; is this an alias bomb?", maxValues)
	case d.budget == 0:
		d.errs.add(d.src.nodePos(n), "more than %d values: too many for a pipeline file", maxValues)
	}
	if d.budget <= 0 {
		return nil
	}
	if d.depth >= maxDepth {
		if !d.tooDeep {
			d.tooDeep = true
			d.errs.add(d.src.nodePos(n), "nested more than %d levels deep", maxDepth)
		}
		return nil
	}
	d.depth++
	defer func() { d.depth-- }()
	switch n.Kind {
	case yaml.AliasNode:
		return d.alias(n)
	case yaml.ScalarNode:
		return d.scalar(n)
	case yaml.SequenceNode:
		out := make([]any, 0, min(len(n.Content), max(d.budget, 0)))
		for _, c := range n.Content {
			if d.budget <= 0 {
				break
			}
			out = append(out, d.value(c))
		}
		return out
	case yaml.MappingNode:
		return d.mapping(n)
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			return d.value(n.Content[0])
		}
	}
	return nil
}

func (d *decoder) alias(n *yaml.Node) any {
	if n.Alias == nil {
		return nil
	}
	if d.expanding[n.Alias] {
		d.errs.add(d.src.nodePos(n), "alias *%s refers to the value that contains it", n.Value)
		return nil
	}
	d.expanding[n.Alias] = true
	d.aliasDepth++
	v := d.value(n.Alias)
	d.aliasDepth--
	delete(d.expanding, n.Alias)
	return v
}

func (d *decoder) scalar(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!str", "!!merge":
		return n.Value
	case "!!null":
		return nil
	}
	v, err := decodeScalar(n)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
		if m := yamlLine.FindStringSubmatch("yaml: " + msg); m != nil {
			msg = m[2]
		}
		d.errs.add(d.src.nodePos(n), "%s", msg)
		return n.Value
	}
	return v
}

// mapping decodes a mapping; keys merged in with "<<" lose to the
// mapping's own keys, and earlier merges win over later ones (YAML 1.1).
func (d *decoder) mapping(n *yaml.Node) map[string]any {
	size := min(len(n.Content)/2, max(d.budget, 0))
	out := make(map[string]any, size)
	first := make(map[string]*yaml.Node, size)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content) && d.budget > 0; i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merges = append(merges, v)
			continue
		}
		name, ok := d.key(k)
		if !ok {
			continue
		}
		if prev, dup := first[name]; dup {
			d.errs.add(d.src.nodePos(k), "duplicate key %s (first at line %d)", clip(name), prev.Line)
			continue
		}
		first[name] = k
		out[name] = d.value(v)
	}
	for _, m := range merges {
		d.merge(out, m)
	}
	return out
}

func (d *decoder) merge(out map[string]any, n *yaml.Node) {
	fill := func(src any, at *yaml.Node) {
		m, ok := src.(map[string]any)
		if !ok {
			// nil: an error already reported (alias loop, budget spent)
			if src != nil {
				d.errs.add(d.src.nodePos(at), "a \"<<\" merge takes a mapping or a list of mappings")
			}
			return
		}
		for k, v := range m {
			if _, set := out[k]; !set {
				out[k] = v
			}
		}
	}
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			fill(d.value(c), c)
		}
		return
	}
	fill(d.value(n), n)
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// key returns a mapping key's text: config keys are names, so 1 or true as
// a key means the string "1" or "true".
func (d *decoder) key(k *yaml.Node) (string, bool) {
	for hops := 0; k.Kind == yaml.AliasNode && k.Alias != nil && hops < 8; hops++ {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		d.errs.add(d.src.nodePos(k), "a key must be a plain name, not a list or mapping")
		return "", false
	}
	return k.Value, true
}

// decodeScalar lets yaml.v3 read a tagged scalar (ints in any base,
// floats, bools, explicit tags). yaml.v3 reports errors by panicking and
// recovering its own panics; any other panic is a parser bug, which must
// not take `sluice validate` down with it.
func decodeScalar(n *yaml.Node) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot read %s: %v", clip(n.Value), r)
		}
	}()
	err = n.Decode(&v)
	return v, err
}
