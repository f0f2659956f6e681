package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

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

// parse reads the single YAML document of data into s.root, with its
// ${...} references masked (see maskRefs) so that YAML reads each as part
// of a scalar wherever it stands. Unmasked, the file may parse where the
// masks could not be read back, or not at all: when neither parses, the
// error reported is the one further into the file, as the other may be
// what the masks fix, or what they took apart.
func (s *source) parse(data []byte) Errors {
	masked, refs := maskRefs(data)
	if refs == nil {
		return s.parseYAML(data)
	}
	maskedErrs := s.parseYAML(masked)
	if len(maskedErrs) == 0 && unmask(s.root, refs) {
		return nil
	}
	errs := s.parseYAML(data)
	if len(errs) > 0 && len(maskedErrs) > 0 && comparePos(maskedErrs[0].Pos, errs[0].Pos) >= 0 {
		return maskedErrs
	}
	return errs
}

// parseYAML reads the single YAML document of data into s.root.
func (s *source) parseYAML(data []byte) (errs Errors) {
	s.root = nil
	defer func() {
		// yaml.v3 reports its own errors by panicking and recovering; a
		// panic that escapes it is a bug in the parser, which must not take
		// `sluice validate` down with it.
		if v := recover(); v != nil {
			errs = Errors{{Pos: Pos{File: s.file, Line: 1, Col: 1}, Msg: fmt.Sprintf("invalid YAML: the parser failed: %v", v)}}
		}
	}()
	if i := bytes.IndexByte(data, 0); i >= 0 && !utf16BOM(data) {
		// No text has a NUL byte (and YAML allows none anywhere): this is
		// a binary file passed by mistake.
		return Errors{{Pos: s.offsetPos(data, i), Msg: fmt.Sprintf("not a text file: NUL byte at offset %d", i)}}
	}
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

// syntaxError points a yaml.v3 error at its line and column. yaml.v3 gives
// a line at best (none for a problem on the first line, nor for a byte
// its reader refuses), and not always the line at fault, so both are
// found again here.
func (s *source) syntaxError(err error, data []byte) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	reported := 1 // yaml.v3 omits "line 1" (its lines count from 0 there)
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		reported, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else if off, what, found := firstNonText(data); found {
		return &Error{Pos: s.offsetPos(data, off), Msg: "invalid YAML: " + what}
	} else if strings.HasPrefix(msg, "exceeded max depth") {
		// Parsing prefixes of such a file to find the place is slow, and
		// the place is plain: where the brackets nest too deep.
		return &Error{Pos: s.offsetPos(data, tooDeepAt(data)), Msg: "invalid YAML: " + msg}
	}
	line, col := problemAt(data, reported, msg)
	return &Error{Pos: Pos{File: s.file, Line: line, Col: col}, Msg: "invalid YAML: " + msg}
}

// utf16BOM reports that data starts with a UTF-16 byte order mark, which
// yaml.v3 decodes: NUL bytes are then part of the text.
func utf16BOM(data []byte) bool {
	return bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF})
}

// offsetPos is the line and column of byte off of data; columns count
// characters, as yaml.v3's do, and each byte of broken UTF-8 as one.
func (s *source) offsetPos(data []byte, off int) Pos {
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	return Pos{File: s.file, Line: bytes.Count(data[:start], []byte("\n")) + 1, Col: utf8.RuneCount(data[start:off]) + 1}
}

// firstNonText finds the first byte yaml.v3's reader refuses: broken
// UTF-8, or a character YAML does not allow in a file (control characters
// other than tab and line breaks, surrogates, U+FFFE and U+FFFF).
func firstNonText(data []byte) (off int, what string, found bool) {
	if utf16BOM(data) {
		return 0, "", false
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return i, fmt.Sprintf("not UTF-8: byte 0x%02x at offset %d", data[i], i), true
		case !yamlChar(r) && unicode.IsControl(r):
			return i, fmt.Sprintf("control character %U at offset %d is not allowed", r, i), true
		case !yamlChar(r):
			return i, fmt.Sprintf("character %U at offset %d is not allowed", r, i), true
		}
		i += size
	}
	return 0, "", false
}

// yamlChar reports whether YAML 1.2 allows r in a stream (c-printable).
func yamlChar(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7E, r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// tooDeepAt is the offset of the first bracket nested deeper than
// yaml.v3 allows (brackets in quotes and comments count too: the place is
// for a person to look at), or 0.
func tooDeepAt(data []byte) int {
	const limit = 10000 // yaml.v3's max_flow_level and max_indents
	depth := 0
	for i, b := range data {
		switch b {
		case '[', '{':
			if depth++; depth > limit {
				return i
			}
		case ']', '}':
			depth = max(depth-1, 0)
		}
	}
	return 0
}

// Bounds on the search for a syntax error's place. In a file larger than
// scanSize the line yaml.v3 reported stands, without a column; the search
// parses at most scanWork bytes in all (a prefix of the file per try), then
// settles for what it has.
const (
	scanSize  = 64 << 10
	scanWork  = 4 << 20
	scanLines = 200
)

// locator searches for the place of a syntax error by parsing prefixes of
// the file.
type locator struct {
	lines [][]byte // the file's lines, each with its "\n"
	work  int      // bytes parsed so far
}

// tryParse returns the error parsing data gives ("" if none), and false
// once the work budget is spent.
func (l *locator) tryParse(data []byte) (msg string, ok bool) {
	if l.work += len(data) + 1; l.work > scanWork {
		return "", false
	}
	return parseError(data), true
}

// upTo is the file's first k lines.
func (l *locator) upTo(k int) []byte { return bytes.Join(l.lines[:min(k, len(l.lines))], nil) }

// fails reports that the first k lines do not parse (false once the
// budget is spent).
func (l *locator) fails(k int) bool {
	msg, ok := l.tryParse(l.upTo(k))
	return ok && msg != ""
}

// problemAt finds the line and column of a syntax error that yaml.v3
// reported on line reported with message msg.
//
// yaml.v3's line is where it found the problem, or for some errors where
// the enclosing construct starts: "line 1" can mean a problem on line 4.
// The line at fault is then the first, from the reported one, whose end no
// longer parses. At the end of the file (an unclosed quote or bracket)
// yaml.v3 reports the last line, and the line at fault is where the file
// stops parsing: a binary search for the longest prefix of whole lines
// that parses finds it.
//
// On that line, the prefixes that end at the character at fault or after
// it fail with the same message, and shorter ones parse or fail for
// another reason (a bracket not closed yet): the column is where that run
// starts. Failing that, it is where the longest prefix that parses ends,
// or the line's first character.
func problemAt(data []byte, reported int, msg string) (line, col int) {
	if len(data) > scanSize {
		return reported, 0
	}
	l := &locator{lines: bytes.SplitAfter(data, []byte("\n"))}
	line = min(reported, len(l.lines))
	if reported >= len(l.lines) && l.fails(line-1) {
		lo, hi := 0, line-1 // the first lo lines parse, the first hi do not
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			msg, ok := l.tryParse(l.upTo(mid))
			if !ok {
				break
			}
			if msg == "" {
				lo = mid
			} else {
				hi = mid
			}
		}
		line = hi
	} else {
		for k := line; k <= len(l.lines) && k < line+scanLines; k++ {
			if l.fails(k) {
				line = k
				break
			}
		}
	}
	return line, l.column(line, msg)
}

// column finds the column on line of a problem with message msg.
func (l *locator) column(line int, msg string) int {
	before, text := l.upTo(line-1), bytes.TrimRight(l.lines[line-1], "\r\n")
	want := sameProblem(msg)
	// cols[i] is the offset of the line's character i+1; the last is the
	// line's end.
	var cols []int
	for c := range string(text) {
		cols = append(cols, c)
	}
	cols = append(cols, len(text))
	prefix := func(i int) (string, bool) {
		return l.tryParse(append(before[:len(before):len(before)], text[:cols[i]]...))
	}
	same := func(i int) (bool, bool) {
		m, ok := prefix(i)
		return sameProblem(m) == want, ok
	}

	// The run of prefixes failing as the whole file does: bisect for its
	// start, the first prefix that holds the character at fault.
	last := len(cols) - 1
	if inRun, ok := same(last); ok && inRun {
		if first, ok := same(0); ok && first {
			return 1
		}
		lo, hi := 0, last // prefix lo is not in the run, prefix hi is
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			inRun, ok := same(mid)
			if !ok {
				return firstChar(text)
			}
			if inRun {
				hi = mid
			} else {
				lo = mid
			}
		}
		return hi // prefix hi ends with character hi
	}
	// Otherwise: where the longest prefix that parses ends.
	for i := last; i >= 0; i-- {
		m, ok := prefix(i)
		if !ok {
			break
		}
		if m == "" {
			return i + 1
		}
	}
	return firstChar(text)
}

// firstChar is the column of the first character of text that is not a
// space.
func firstChar(text []byte) int { return len(text) - len(bytes.TrimLeft(text, " ")) + 1 }

// parseError returns the message of the first document of data that does
// not parse, or "" when every one does.
func parseError(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			return err.Error()
		}
	}
}

var quotedName = regexp.MustCompile(`'[^']*'`)

// sameProblem is a message without what changes from one prefix of a line
// to the next: its line number, and quoted names ("unknown anchor 'n'").
func sameProblem(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatch("yaml: " + msg); m != nil {
		msg = m[2]
	}
	return quotedName.ReplaceAllString(msg, "''")
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
