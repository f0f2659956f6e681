package config

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// A ${...} reference is text, which YAML reads by its own rules before
// any variable is looked up: `gen: {type: generate, count: ${N:-3}}` is a
// syntax error, since "{" and "}" open and close flow mappings, and in
// `expr: ${E:-a # b}` the "# b" is a comment. So before the file is
// parsed, each reference closed on its line (and each escaped $${...}) is
// masked: replaced by as many characters, of a kind YAML reads as part of
// a plain scalar anywhere. yaml.v3 counts columns in characters, so every
// position stays that of the file. After parsing, each scalar gets the
// text of its references back, and interpolation goes on as if YAML had
// read them as written.
//
// A mask is a mark followed by digits encoding the reference's index,
// all characters of Unicode's plane 16 (private use, 4 bytes each in
// UTF-8). A file holding any character of that plane is parsed unmasked,
// as is one that masking would misread (see unmask).
const (
	maskMark  = '\U0010F000'
	maskDigit = '\U00100000' // digit d is maskDigit+d
	maskBase  = 1 << 15
)

// maskRefs returns data with its references masked, and the references
// as written (refs[i] is the text mask i stands for). refs is nil when
// there is nothing to mask, or data is not such text as masking keeps
// positions in.
func maskRefs(data []byte) (masked []byte, refs []string) {
	if !bytes.Contains(data, []byte("${")) || !utf8.Valid(data) || bytes.IndexByte(data, 0xF4) >= 0 || utf16BOM(data) {
		return nil, nil // 0xF4 starts every character of plane 16
	}
	if _, _, bad := firstNonText(data); bad {
		return nil, nil // a reader error, whose offset masking would move
	}
	var out bytes.Buffer
	out.Grow(len(data) + len(data)/2)
	for rest := string(data); rest != ""; {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		for i := 0; i < len(line); {
			start := i
			switch {
			case strings.HasPrefix(line[i:], "$${"):
				start = i + 1 // the reference syntax starts at "${"
			case !strings.HasPrefix(line[i:], "${"):
				out.WriteByte(line[i])
				i++
				continue
			}
			end, _ := closeRef(line, start)
			if end < 0 || len(refs) >= maskBase*maskBase {
				// Not closed on this line: left to interpolation to
				// read or report.
				out.WriteString(line[i : start+2])
				i = start + 2
				continue
			}
			text := line[i:end]
			writeMask(&out, len(refs), utf8.RuneCountInString(text))
			refs = append(refs, text)
			i = end
		}
	}
	if refs == nil {
		return nil, nil
	}
	return out.Bytes(), refs
}

// writeMask writes the mask of reference idx, n characters long (n >= 3,
// the length of "${}"): the mark, then idx in n-1 digits.
func writeMask(out *bytes.Buffer, idx, n int) {
	out.WriteRune(maskMark)
	digits := make([]rune, n-1)
	for j := len(digits) - 1; j >= 0; j-- {
		digits[j] = maskDigit + rune(idx%maskBase)
		idx /= maskBase
	}
	for _, d := range digits {
		out.WriteRune(d)
	}
}

// unmask puts the references back into the tree parsed from masked text.
// It reports false when a mask is somewhere no reference can be read back
// from (an anchor, a tag, an alias), or when the text of a reference
// cannot be what its scalar's quoting means: masking took a quote into a
// reference, as in `{a: "${", b: "}"}`. The file is then parsed unmasked.
func unmask(n *yaml.Node, refs []string) bool {
	if n == nil {
		return true
	}
	if strings.ContainsRune(n.Anchor, maskMark) || strings.ContainsRune(n.Tag, maskMark) {
		return false
	}
	// Comments are read by no one; their references go back as written.
	for _, c := range []*string{&n.HeadComment, &n.LineComment, &n.FootComment} {
		if text, ok := restore(*c, refs, yaml.LiteralStyle); ok {
			*c = text
		}
	}
	switch n.Kind {
	case yaml.AliasNode:
		return !strings.ContainsRune(n.Value, maskMark) // its target is unmasked where it stands
	case yaml.ScalarNode:
		text, ok := restore(n.Value, refs, n.Style)
		n.Value = text
		return ok
	}
	for _, c := range n.Content {
		if !unmask(c, refs) {
			return false
		}
	}
	return true
}

// restore replaces the masks in text by the references they stand for,
// as a scalar of the given style reads them.
func restore(text string, refs []string, style yaml.Style) (string, bool) {
	if !strings.ContainsRune(text, maskMark) {
		return text, true
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		if r != maskMark {
			b.WriteRune(r)
			continue
		}
		idx, digits := 0, 0
		for i < len(text) {
			d, size := utf8.DecodeRuneInString(text[i:])
			if d < maskDigit || d >= maskDigit+maskBase {
				break
			}
			idx = idx*maskBase + int(d-maskDigit)
			digits++
			i += size
		}
		if idx >= len(refs) || digits != utf8.RuneCountInString(refs[idx])-1 {
			return text, false // a mask cut short: not a reference read whole
		}
		ref, ok := unquote(refs[idx], style)
		if !ok {
			return text, false
		}
		b.WriteString(ref)
	}
	return b.String(), true
}

// unquote reads the text of a reference as written inside a scalar of the
// given style: in double quotes, escapes are read (backslash, quote is a
// quote); in single quotes, a quote written twice is one. A quote that
// would close the scalar means the reference was not inside it.
func unquote(ref string, style yaml.Style) (string, bool) {
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		for i := 0; i < len(ref); i++ {
			switch ref[i] {
			case '\\':
				i++
			case '"':
				return "", false
			}
		}
		if !strings.Contains(ref, `\`) {
			return ref, true
		}
		var s string
		if err := yaml.Unmarshal([]byte(`"`+ref+`"`), &s); err != nil {
			return "", false
		}
		return s, true
	case style&yaml.SingleQuotedStyle != 0:
		if strings.Contains(strings.ReplaceAll(ref, "''", ""), "'") {
			return "", false
		}
		return strings.ReplaceAll(ref, "''", "'"), true
	}
	return ref, true
}
