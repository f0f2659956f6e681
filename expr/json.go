package expr

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError is a record value that is not valid JSON.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("value is not valid JSON: %s at offset %d", e.Msg, e.Offset)
}

// NotObjectError is a JSON value read as value.x that is not an object.
type NotObjectError struct {
	Member string
	Kind   string
}

func (e *NotObjectError) Error() string {
	return fmt.Sprintf("cannot read value.%s: value is a JSON %s, not an object", e.Member, e.Kind)
}

// maxDepth bounds nesting, so a hostile value cannot exhaust the stack.
const maxDepth = 10000

// scanner reads JSON from b. It validates everything it passes over, so
// reading a few members still rejects a malformed value.
type scanner struct {
	b     []byte
	i     int
	depth int
	buf   []byte // scratch for unescaping
}

func (s *scanner) fail(msg string) error { return &SyntaxError{Offset: s.i, Msg: msg} }

func (s *scanner) unexpected() error {
	if s.i >= len(s.b) {
		return s.fail("unexpected end")
	}
	return s.fail(fmt.Sprintf("unexpected %q", s.b[s.i]))
}

func (s *scanner) ws() { s.i = skipWS(s.b, s.i) }

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.fail("data after the top-level value")
	}
	return nil
}

func kindOf(c byte) string {
	switch c {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// span locates a member's raw JSON in the value: b[start:end]; end 0
// means absent. Offsets rather than slices keep the scan free of pointer
// writes (and so of GC write barriers). A member that is an integer of at
// most 18 digits, the common case, is read as the scan passes it: its
// value is in n when isInt.
type span struct {
	start, end int
	n          int
	isInt      bool
}

// of returns the member's bytes in b, nil when absent.
func (sp span) of(b []byte) []byte {
	if sp.end == 0 {
		return nil
	}
	return b[sp.start:sp.end:sp.end]
}

// members finds the top-level members named in names and stores where
// their raw JSON is in spans. Duplicate keys: the last wins, as in
// encoding/json. A NotObjectError names names[0].
//
// It is the hot path of most expressions, so plain keys and numbers are
// read inline, and whitespace is looked for only where a byte is not the
// one compact JSON has there; anything else goes through the general
// scanner.
func (s *scanner) members(names []string, spans []span) error {
	for k := range spans {
		spans[k] = span{}
	}
	b := s.b
	i := skipWS(b, 0)
	if i >= len(b) {
		s.i = i
		return s.fail("empty value")
	}
	if c := b[i]; c != '{' {
		s.i = i
		if err := s.skip(); err != nil {
			return err
		}
		if err := s.end(); err != nil {
			return err
		}
		return &NotObjectError{Member: names[0], Kind: kindOf(c)}
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		s.i = i + 1
		return s.end()
	}
	for {
		if i >= len(b) || b[i] != '"' {
			if i = skipWS(b, i); i >= len(b) || b[i] != '"' {
				s.i = i
				return s.unexpected()
			}
		}
		// A key of printable ASCII without escapes compares as is.
		j := plainEnd(b, i+1)
		idx := -1
		if j < len(b) && b[j] == '"' {
			key := b[i+1 : j]
			for k, n := range names {
				if sameKey(key, n) {
					idx = k
					break
				}
			}
			i = j + 1
		} else {
			s.i = i
			raw, err := s.rawString()
			if err != nil {
				return err
			}
			idx = s.match(raw, names)
			i = s.i
		}
		if i >= len(b) || b[i] != ':' {
			if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
				s.i = i
				return s.unexpected()
			}
		}
		i++
		if i < len(b) && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		start := i
		if n, end, ok := plainInt(b, i); ok {
			i = end
			if idx >= 0 {
				spans[idx] = span{start: start, end: i, n: n, isInt: true}
			}
		} else {
			s.i = i
			if i < len(b) && (b[i] == '-' || b[i] >= '0' && b[i] <= '9') {
				if _, _, err := s.number(); err != nil {
					return err
				}
			} else if err := s.skip(); err != nil {
				return err
			}
			i = s.i
			if idx >= 0 {
				spans[idx] = span{start: start, end: i}
			}
		}
		if i < len(b) && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		if i >= len(b) {
			s.i = i
			return s.unexpected()
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			if i+1 == len(b) { // the usual end: nothing after the object
				s.i = len(b)
				return nil
			}
			s.i = i + 1
			return s.end()
		default:
			s.i = i
			return s.unexpected()
		}
	}
}

// sameKey is string(key) == name, without a call for the short keys
// records mostly have.
func sameKey(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	if len(key) > 16 {
		return string(key) == name
	}
	for k := range key {
		if key[k] != name[k] {
			return false
		}
	}
	return true
}

// plainInt reads the integer at b[i:] when it is written plainly: an
// optional minus, then 1 to 18 digits without a leading zero (so it fits
// an int), and no fraction or exponent after them. ok false means: read
// it with the general scanner, which also reports what is wrong with it.
func plainInt(b []byte, i int) (n, end int, ok bool) {
	j := i
	neg := j < len(b) && b[j] == '-'
	if neg {
		j++
	}
	if j >= len(b) || b[j] < '1' || b[j] > '9' {
		return 0, 0, false
	}
	first := j
	if len(b) >= 8 {
		// Up to eight digits at once, without a loop: count the leading
		// digits of the next eight bytes, shift the rest out, and add
		// the digits up pairwise. Near the end of b, the eight bytes
		// that end it are read and shifted down, zero bytes (not
		// digits) coming in past its end.
		var x uint64
		if j+8 <= len(b) {
			x = binary.LittleEndian.Uint64(b[j:])
		} else {
			x = binary.LittleEndian.Uint64(b[len(b)-8:]) >> (8 * (j + 8 - len(b)))
		}
		const f0, threes, sixes = 0xF0F0F0F0F0F0F0F0, 0x3030303030303030, 0x0606060606060606
		// A byte of m is zero where x holds a digit (high nibble 3, and
		// still 3 once 6 is added). A carry out of a byte only changes
		// bytes past it, past the first non-digit.
		m := (x&f0 ^ threes) | ((x+sixes)&f0 ^ threes)
		d := 8
		if m != 0 {
			d = bits.TrailingZeros64(((m+0x7F7F7F7F7F7F7F7F)|m)&0x8080808080808080) / 8
		}
		v := x << (8 * (8 - d)) // the digits last, zero bytes before them
		v = (v & 0x0F0F0F0F0F0F0F0F) * (1 + 10<<8) >> 8
		v = (v & 0x00FF00FF00FF00FF) * (1 + 100<<16) >> 16
		n = int((v & 0x0000FFFF0000FFFF) * (1 + 10000<<32) >> 32)
		j += d
		if d < 8 {
			return intEnd(b, first, j, n, neg)
		}
	}
	for ; j < len(b); j++ {
		d := b[j] - '0'
		if d > 9 {
			break
		}
		n = n*10 + int(d)
	}
	return intEnd(b, first, j, n, neg)
}

// intEnd finishes plainInt: the digits are b[first:j], their value n.
func intEnd(b []byte, first, j, n int, neg bool) (int, int, bool) {
	if j-first > 18 || j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, j, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// match compares a raw (still quoted) key with names without allocating in
// the common case of a plain ASCII key.
func (s *scanner) match(raw []byte, names []string) int {
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c == '\\' || c >= utf8.RuneSelf {
			k := jsonString(raw, &s.buf)
			for j, n := range names {
				if k == n {
					return j
				}
			}
			return -1
		}
	}
	for j, n := range names {
		if string(body) == n {
			return j
		}
	}
	return -1
}

// rawString returns the quoted string at s.i, validated.
func (s *scanner) rawString() ([]byte, error) {
	b, i := s.b, s.i
	if i >= len(b) || b[i] != '"' {
		return nil, s.unexpected()
	}
	start := i
	i++
	for i < len(b) {
		if i = plainEnd(b, i); i >= len(b) {
			break
		}
		c := b[i]
		if c >= utf8.RuneSelf {
			i++
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return b[start:s.i], nil
		case c == '\\':
			i++
			if i >= len(b) {
				s.i = i
				return nil, s.unexpected()
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				for k := 1; k <= 4; k++ {
					if i+k >= len(b) || unhex(b[i+k]) < 0 {
						s.i = i + k
						return nil, s.fail("invalid \\u escape")
					}
				}
				i += 5
			default:
				s.i = i
				return nil, s.fail("invalid escape")
			}
		default:
			s.i = i
			return nil, s.fail("control character in string")
		}
	}
	s.i = i
	return nil, s.fail("unterminated string")
}

// skip validates and passes over one value.
func (s *scanner) skip() error {
	if s.i >= len(s.b) {
		return s.unexpected()
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.rawString()
		return err
	case c == '{' || c == '[':
		return s.skipContainer(c)
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		_, _, err := s.number()
		return err
	}
}

func (s *scanner) skipContainer(open byte) error {
	s.depth++
	if s.depth > maxDepth {
		return s.fail("nesting too deep")
	}
	defer func() { s.depth-- }()
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == closer {
		s.i++
		return nil
	}
	for {
		s.ws()
		if open == '{' {
			if _, err := s.rawString(); err != nil {
				return err
			}
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != ':' {
				return s.unexpected()
			}
			s.i++
			s.ws()
		}
		if err := s.skip(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.unexpected()
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case closer:
			s.i++
			return nil
		default:
			return s.unexpected()
		}
	}
}

func (s *scanner) literal(word string) error {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.fail("invalid literal")
	}
	s.i += len(word)
	return nil
}

// number passes over a number and reports its text and whether it is an
// integer (no fraction, no exponent).
func (s *scanner) number() (text []byte, integer bool, err error) {
	b, i := s.b, s.i
	start := i
	integer = true
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		s.i = i
		return nil, false, s.unexpected()
	}
	if i < len(b) && b[i] == '.' {
		integer = false
		j := digits(b, i+1)
		if j == i+1 {
			s.i = j
			return nil, false, s.fail("invalid number")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			s.i = j
			return nil, false, s.fail("invalid number")
		}
		i = j
	}
	s.i = i
	return b[start:i], integer, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// value parses one value into Go: map[string]any, []any, string, int or
// float64, bool, nil.
func (s *scanner) value() (any, error) {
	if s.i >= len(s.b) {
		return nil, s.unexpected()
	}
	switch c := s.b[s.i]; {
	case c == '"':
		raw, err := s.rawString()
		if err != nil {
			return nil, err
		}
		return s.str(raw)
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return nil, s.literal("null")
	default:
		text, integer, err := s.number()
		if err != nil {
			return nil, err
		}
		return numberValue(text, integer), nil
	}
}

func (s *scanner) str(raw []byte) (string, error) {
	return jsonString(raw, &s.buf), nil
}

// jsonString decodes a validated quoted string. Invalid UTF-8 becomes
// U+FFFD byte by byte, as encoding/json does.
func jsonString(raw []byte, buf *[]byte) string {
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c == '\\' {
			*buf = unquote(raw, (*buf)[:0])
			return validString(*buf)
		}
	}
	return validString(body)
}

func validString(b []byte) string {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			if utf8.Valid(b) {
				break
			}
			out := make([]rune, 0, len(b))
			for len(b) > 0 {
				r, n := utf8.DecodeRune(b)
				out = append(out, r)
				b = b[n:]
			}
			return string(out)
		}
	}
	return string(b)
}

func (s *scanner) object() (any, error) {
	s.depth++
	if s.depth > maxDepth {
		return nil, s.fail("nesting too deep")
	}
	defer func() { s.depth-- }()
	m := map[string]any{}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return m, nil
	}
	for {
		s.ws()
		raw, err := s.rawString()
		if err != nil {
			return nil, err
		}
		k, err := s.str(raw)
		if err != nil {
			return nil, err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, s.unexpected()
		}
		s.i++
		s.ws()
		v, err := s.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		s.ws()
		if s.i >= len(s.b) {
			return nil, s.unexpected()
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return m, nil
		default:
			return nil, s.unexpected()
		}
	}
}

func (s *scanner) array() (any, error) {
	s.depth++
	if s.depth > maxDepth {
		return nil, s.fail("nesting too deep")
	}
	defer func() { s.depth-- }()
	a := []any{}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return a, nil
	}
	for {
		s.ws()
		v, err := s.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		s.ws()
		if s.i >= len(s.b) {
			return nil, s.unexpected()
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return a, nil
		default:
			return nil, s.unexpected()
		}
	}
}

// numberValue converts validated number text: int when it is an integer
// that fits, float64 otherwise.
func numberValue(text []byte, integer bool) any {
	if integer && len(text) <= 18 { // cannot overflow int64
		n, neg := 0, false
		for _, c := range text {
			if c == '-' {
				neg = true
				continue
			}
			n = n*10 + int(c-'0')
		}
		if neg {
			n = -n
		}
		return n
	}
	if integer {
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil && n >= math.MinInt && n <= math.MaxInt {
			return int(n)
		}
	}
	f, _ := strconv.ParseFloat(string(text), 64) // out of range: ±Inf, still a number
	return f
}

// decodeJSON parses a whole value.
func decodeJSON(b []byte) (any, error) {
	s := scanner{b: b}
	s.ws()
	if s.i >= len(b) {
		return nil, s.fail("empty value")
	}
	v, err := s.value()
	if err != nil {
		return nil, err
	}
	return v, s.end()
}

// parseMember turns a member's raw JSON (from members) into a Go value.
func parseMember(raw []byte) any {
	if raw == nil {
		return nil
	}
	switch c := raw[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		integer := true
		for _, d := range raw {
			if d == '.' || d == 'e' || d == 'E' {
				integer = false
				break
			}
		}
		return numberValue(raw, integer)
	case c == 't':
		return true
	case c == 'f':
		return false
	case c == 'n':
		return nil
	}
	// Strings and containers were validated by members: this cannot fail.
	v, _ := decodeJSON(raw)
	return v
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unquote decodes a validated quoted JSON string into dst.
func unquote(raw, dst []byte) []byte {
	body := raw[1 : len(raw)-1]
	for i := 0; i < len(body); {
		c := body[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		i++
		switch body[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(body[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
					r2 = hex4(body[i+3:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, body[i])
		}
		i++
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r = r<<4 | rune(unhex(c))
	}
	return r
}

// plainEnd returns the index of the first byte at or after i that a scan
// of a JSON string must look at ('"', '\\', a control character or a
// non-ASCII byte), or len(b). It tests eight bytes at a time: strings are
// most of what a scan of a record reads.
func plainEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	if i >= len(b) {
		return len(b)
	}
	if len(b) >= 8 {
		// The eight bytes that end b, shifted down to start at i: the
		// zero bytes shifted in past the end are control characters,
		// found after every byte of b.
		m := special(binary.LittleEndian.Uint64(b[len(b)-8:]) >> (8 * (i + 8 - len(b))))
		return min(i+bits.TrailingZeros64(m)/8, len(b))
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return i
		}
	}
	return len(b)
}

// special marks with its high bit each byte of x (eight bytes of a string,
// the first lowest) that is '"', '\\', a control character or non-ASCII.
// Past the first marked byte the marks may be wrong; that one is right.
func special(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(ones*'"'), x^(ones*'\\')
	// A byte of q or bs is zero where x holds '"' or '\\'; subtracting
	// 0x20 from every byte borrows into the high bit only where a byte
	// is below 0x20; x's own high bits mark non-ASCII bytes. A borrow only
	// leaves a byte that is marked, so it reaches only bytes after it.
	return ((q-ones)&^q | (bs-ones)&^bs | (x - ones*0x20) | x) & highs
}
