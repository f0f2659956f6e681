package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluicedev/sluice/examples/plugins/internal/jsonobj"
	"github.com/sluicedev/sluice/plugins/sdk"
)

type config struct {
	Fields []string `json:"fields"`
	Mask   string   `json:"mask"`

	// Derived by Validate.
	names map[string]bool // member names selected at any depth
	paths map[string]bool // dotted paths from the top
	mask  []byte
}

// Validate checks the config and derives what Process reads.
func (c *config) Validate() error {
	var errs []error
	c.names, c.paths = map[string]bool{}, map[string]bool{}
	for i, f := range c.Fields {
		switch {
		case f == "" || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, ".."):
			errs = append(errs, sdk.FieldErr(fmt.Sprintf("fields.%d", i), fmt.Sprintf("%q is not a member name or a dotted path", f)))
		case strings.Contains(f, "."):
			c.paths[f] = true
		default:
			c.names[f] = true
		}
	}
	if c.Mask == "" {
		c.Mask = "*"
	}
	r, size := utf8.DecodeRuneInString(c.Mask)
	switch {
	case size != len(c.Mask) || r == utf8.RuneError:
		errs = append(errs, sdk.FieldErr("mask", fmt.Sprintf("%q must be a single character", c.Mask)))
	case unicode.IsLetter(r) || unicode.IsDigit(r):
		errs = append(errs, sdk.FieldErr("mask", fmt.Sprintf("%q is a letter or digit: masked text would pass for data", c.Mask)))
	}
	c.mask = []byte(c.Mask)
	return errors.Join(errs...)
}

// redactor is the plugin: its config is filled by the SDK before the first
// record and only read afterwards.
type redactor struct{ cfg config }

func (rd *redactor) plugin() sdk.Plugin {
	return sdk.Plugin{Name: "redact", Version: "1.0.0", Process: rd.process}
}

func (rd *redactor) process(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
	if out, changed, ok := rd.redactJSON(r.Value); ok {
		if changed {
			r.Value = out
		}
		return []sdk.Record{r}, nil
	}
	if out, changed := redactText(r.Value, rd.cfg.mask); changed {
		r.Value = out
	}
	return []sdk.Record{r}, nil
}

// redactJSON re-encodes a JSON value with its selected strings redacted.
// ok is false when v is not one JSON value.
func (rd *redactor) redactJSON(v []byte) (out []byte, changed, ok bool) {
	// A bare number, boolean or null is handled as text: a value of just
	// digits may well be a card number.
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '{' && t[0] != '[' && t[0] != '"' {
		return nil, false, false
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber() // numbers keep their digits
	w := walker{dec: dec, cfg: &rd.cfg, out: make([]byte, 0, len(v))}
	if err := w.value("", len(rd.cfg.Fields) == 0); err != nil {
		return nil, false, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false, false // more than one value: text that starts like JSON
	}
	return w.out, w.changed, true
}

// walker copies a JSON token stream to out, redacting selected strings.
type walker struct {
	dec     *json.Decoder
	cfg     *config
	out     []byte
	changed bool
}

// value copies one value found at path; sel says its strings are
// redacted.
func (w *walker) value(path string, sel bool) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		open, end := byte(t), byte('}')
		if open == '[' {
			end = ']'
		}
		w.out = append(w.out, open)
		for first := true; w.dec.More(); first = false {
			if !first {
				w.out = append(w.out, ',')
			}
			if open == '[' {
				if err := w.value(path, sel); err != nil {
					return err
				}
				continue
			}
			kt, err := w.dec.Token()
			if err != nil {
				return err
			}
			key := kt.(string) // object keys are always strings
			w.out = jsonobj.AppendString(w.out, key)
			w.out = append(w.out, ':')
			sub := key
			if path != "" {
				sub = path + "." + key
			}
			if err := w.value(sub, sel || w.cfg.names[key] || w.cfg.paths[sub]); err != nil {
				return err
			}
		}
		if _, err := w.dec.Token(); err != nil { // the closing delimiter
			return err
		}
		w.out = append(w.out, end)
	case string:
		if sel {
			if red, changed := redactText([]byte(t), w.cfg.mask); changed {
				w.changed = true
				t = string(red)
			}
		}
		w.out = jsonobj.AppendString(w.out, t)
	case json.Number:
		w.out = append(w.out, t...)
	case bool:
		w.out = fmt.Appendf(w.out, "%t", t)
	case nil:
		w.out = append(w.out, "null"...)
	}
	return nil
}
