package pipelinetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluicedev/sluice/flow"
)

// payload is a record value with its JSON reading, decoded once: a diff
// compares every expected record with every record got.
type payload struct {
	raw    []byte
	json   any
	isJSON bool
}

func newPayload(raw []byte) payload {
	v, err := decodeJSON(raw)
	return payload{raw: raw, json: v, isJSON: err == nil}
}

// decodeJSON reads exactly one JSON value, keeping numbers as written.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// sameValue compares as JSON when both sides are JSON, else as bytes.
func sameValue(want, got payload) bool {
	if want.isJSON && got.isJSON {
		return jsonEqual(want.json, got.json)
	}
	return bytes.Equal(want.raw, got.raw)
}

func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || !jsonEqual(av, bv) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		return ok && sameNumber(a, b)
	default: // string, bool, nil
		return a == b
	}
}

// sameNumber compares numbers by value: 4 equals 4.0 and 4e0, and integers
// past 2^53 are still told apart.
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, _, errA := big.ParseFloat(string(a), 10, 256, big.ToNearestEven)
	y, _, errB := big.ParseFloat(string(b), 10, 256, big.ToNearestEven)
	return errA == nil && errB == nil && x.Cmp(y) == 0
}

// want is an expectation ready to compare.
type want struct {
	expected
	payload payload
}

// got is a record a sink received, ready to compare.
type got struct {
	rec     flow.Record
	payload payload
}

func (w *want) matches(g *got) bool {
	if w.hasValue && !sameValue(w.payload, g.payload) {
		return false
	}
	if w.hasKey && !bytes.Equal(w.key, g.rec.Key) {
		return false
	}
	for _, h := range w.headers {
		v, ok := g.rec.Header(h.Key)
		if !ok || !bytes.Equal(v, h.Value) {
			return false
		}
	}
	return true
}

// marshal encodes v as compact JSON, leaving <, > and & as they are.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// show renders a value for a diff: JSON compactly with sorted keys, so
// the same value always reads the same; other bytes as they are when they
// are plain text, quoted when they are not.
func show(p payload) string {
	if p.isJSON {
		if data, err := marshal(p.json); err == nil {
			return string(data)
		}
	}
	return showBytes(p.raw)
}

func showBytes(b []byte) string {
	if len(b) == 0 {
		return "<empty>"
	}
	s := string(b)
	plain := utf8.ValidString(s) && strings.TrimSpace(s) == s
	for _, r := range s {
		if !unicode.IsPrint(r) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return strconv.Quote(s)
}
