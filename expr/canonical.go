package expr

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// canonical reports whether b is a JSON object or array exactly as
// AppendJSON would write it after decoding: no whitespace, object keys in
// increasing byte order without escapes, strings without escapes, numbers
// in the form the encoder prints, valid UTF-8. Then evaluating `value`
// and encoding the result gives b back, so b can be copied instead: the
// difference between decoding every record into maps and a single scan.
// A false answer only means "take the long way"; it never changes a result.
func canonical(b []byte) bool {
	if len(b) == 0 || (b[0] != '{' && b[0] != '[') {
		return false
	}
	c := canonScanner{b: b}
	return c.value(0) && c.i == len(b)
}

type canonScanner struct {
	b       []byte
	i       int
	scratch []byte
}

func (c *canonScanner) value(depth int) bool {
	if c.i >= len(c.b) {
		return false
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		return depth < maxDepth && c.object(depth+1)
	case ch == '[':
		return depth < maxDepth && c.array(depth+1)
	case ch == '"':
		_, ok := c.str()
		return ok
	case ch == 't':
		return c.word("true")
	case ch == 'f':
		return c.word("false")
	case ch == 'n':
		return c.word("null")
	}
	return c.number()
}

func (c *canonScanner) object(depth int) bool {
	c.i++ // {
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		return true
	}
	var prev []byte
	for {
		key, ok := c.str()
		if !ok || (prev != nil && bytes.Compare(prev, key) >= 0) {
			return false // escaped, out of order or repeated
		}
		prev = key
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return false
		}
		c.i++
		if !c.value(depth) {
			return false
		}
		if c.i >= len(c.b) {
			return false
		}
		switch c.b[c.i] {
		case ',':
			c.i++
		case '}':
			c.i++
			return true
		default:
			return false
		}
	}
}

func (c *canonScanner) array(depth int) bool {
	c.i++ // [
	if c.i < len(c.b) && c.b[c.i] == ']' {
		c.i++
		return true
	}
	for {
		if !c.value(depth) || c.i >= len(c.b) {
			return false
		}
		switch c.b[c.i] {
		case ',':
			c.i++
		case ']':
			c.i++
			return true
		default:
			return false
		}
	}
}

// str accepts a string with no escapes and valid UTF-8 (what the encoder
// writes unchanged) and returns its content.
func (c *canonScanner) str() ([]byte, bool) {
	if c.i >= len(c.b) || c.b[c.i] != '"' {
		return nil, false
	}
	start := c.i + 1
	i := start
	for {
		if i = plainEnd(c.b, i); i >= len(c.b) {
			return nil, false
		}
		switch ch := c.b[i]; {
		case ch == '"':
			c.i = i + 1
			return c.b[start:i], true
		case ch < utf8.RuneSelf:
			return nil, false // an escape or a control character
		default:
			r, size := utf8.DecodeRune(c.b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false // invalid UTF-8, written as U+FFFD
			}
			i += size
		}
	}
}

func (c *canonScanner) word(w string) bool {
	if !bytes.HasPrefix(c.b[c.i:], []byte(w)) {
		return false
	}
	c.i += len(w)
	return true
}

// number accepts what numberValue and the encoder turn back into the same
// text: integers without a leading zero or "-0" that fit in an int, and
// other numbers whose float formatting is the text itself.
func (c *canonScanner) number() bool {
	s := scanner{b: c.b, i: c.i}
	text, integer, err := s.number()
	if err != nil {
		return false
	}
	c.i = s.i
	if integer {
		if len(text) > 18 || string(text) == "-0" {
			return false // beyond the fast int path, or printed as 0
		}
		return true
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return false
	}
	out, err := appendFloat(c.scratch[:0], f, 64)
	c.scratch = out
	return err == nil && bytes.Equal(out, text)
}
