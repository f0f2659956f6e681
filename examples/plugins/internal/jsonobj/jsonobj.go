// Package jsonobj edits the top level of a JSON object without decoding
// its values: members keep their order and their exact bytes, so numbers
// too large for a float64 and nested documents pass through untouched.
package jsonobj

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Member is one key and its value, as written in the input.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Object is a JSON object's members in input order.
type Object []Member

// Parse reads one JSON object; anything else (another JSON type, trailing
// data, invalid JSON) is an error.
func Parse(b []byte) (Object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object, got %s", Kind(b))
	}
	var obj Object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		var m Member
		m.Key = tok.(string) // object keys are always strings
		if err := dec.Decode(&m.Value); err != nil {
			return nil, syntaxError(err)
		}
		obj = append(obj, m)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the object")
	}
	return obj, nil
}

func syntaxError(err error) error {
	if err == io.EOF {
		return errors.New("invalid JSON: empty or truncated value")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// Get returns the value of key; with duplicate keys the last wins, as in
// encoding/json.
func (o Object) Get(key string) (json.RawMessage, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].Key == key {
			return o[i].Value, true
		}
	}
	return nil, false
}

// Set returns the object encoded with key set to value (raw JSON): in
// place of an existing member (earlier duplicates dropped), else last.
func (o Object) Set(key string, value []byte) []byte {
	n := len(key) + len(value) + 8
	for _, m := range o {
		n += len(m.Key) + len(m.Value) + 4
	}
	buf := make([]byte, 0, n)
	buf = append(buf, '{')
	last := -1
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].Key == key {
			last = i
			break
		}
	}
	first := true
	member := func(k string, v []byte) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = AppendString(buf, k)
		buf = append(buf, ':')
		buf = append(buf, v...)
	}
	for i, m := range o {
		switch {
		case i == last:
			member(key, value)
		case m.Key != key:
			member(m.Key, m.Value)
		}
	}
	if last < 0 {
		member(key, value)
	}
	return append(buf, '}')
}

// AppendString appends s as a JSON string. Unlike json.Marshal it leaves
// <, > and & alone: the output is data, not HTML.
func AppendString(buf []byte, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes (invalid UTF-8 becomes U+FFFD)
	return append(buf, bytes.TrimSuffix(b.Bytes(), []byte{'\n'})...)
}

// Kind names the JSON type of a raw value for error messages.
func Kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't', c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-', c >= '0' && c <= '9':
		return "a number"
	}
	return "not JSON"
}

// IsNull reports whether raw is the JSON null.
func IsNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }
