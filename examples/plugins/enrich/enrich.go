package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluicedev/sluice/examples/plugins/internal/jsonobj"
	"github.com/sluicedev/sluice/plugins/sdk"
)

// What happens to a record whose key has no table entry.
const (
	missingSkip  = "skip"  // pass it on unchanged
	missingNull  = "null"  // set target to null
	missingError = "error" // fail it
)

type config struct {
	Field     string                     `json:"field"`
	Table     map[string]json.RawMessage `json:"table"`
	Target    string                     `json:"target"`
	OnMissing string                     `json:"on_missing"`
}

// Validate checks the config and fills in defaults, so Process only reads.
func (c *config) Validate() error {
	var errs []error
	if c.Field == "" {
		errs = append(errs, sdk.FieldErr("field", "required: the field holding the lookup key"))
	}
	if len(c.Table) == 0 {
		errs = append(errs, sdk.FieldErr("table", "required: at least one entry (key: value to add)"))
	}
	switch c.OnMissing {
	case "":
		c.OnMissing = missingSkip
	case missingSkip, missingNull, missingError:
	default:
		errs = append(errs, sdk.FieldErr("on_missing", fmt.Sprintf("%q is not one of skip, null, error", c.OnMissing)))
	}
	if c.Target == "" && c.Field != "" {
		c.Target = c.Field + "_info"
	}
	for k, v := range c.Table {
		// Entries are spliced into records as they are: compact them once.
		c.Table[k] = compact(v)
	}
	return errors.Join(errs...)
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw // the decoder already checked it is valid JSON
	}
	return b.Bytes()
}

// enricher is the plugin: its config is filled by the SDK before the first
// record and only read afterwards.
type enricher struct{ cfg config }

func (e *enricher) plugin() sdk.Plugin {
	return sdk.Plugin{Name: "enrich", Version: "1.0.0", Process: e.process}
}

func (e *enricher) process(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
	obj, err := jsonobj.Parse(r.Value)
	if err != nil {
		return nil, fmt.Errorf("enrich: value: %w", err)
	}
	raw, ok := obj.Get(e.cfg.Field)
	if !ok || jsonobj.IsNull(raw) {
		return e.missing(r, obj, fmt.Sprintf("record has no %q", e.cfg.Field))
	}
	key, err := lookupKey(raw)
	if err != nil {
		return nil, fmt.Errorf("enrich: field %q: %w", e.cfg.Field, err)
	}
	info, ok := e.cfg.Table[key]
	if !ok {
		return e.missing(r, obj, fmt.Sprintf("no table entry for %s %q", e.cfg.Field, key))
	}
	r.Value = obj.Set(e.cfg.Target, info)
	return []sdk.Record{r}, nil
}

func (e *enricher) missing(r sdk.Record, obj jsonobj.Object, why string) ([]sdk.Record, error) {
	switch e.cfg.OnMissing {
	case missingNull:
		r.Value = obj.Set(e.cfg.Target, []byte("null"))
	case missingError:
		return nil, errors.New("enrich: " + why)
	}
	return []sdk.Record{r}, nil
}

// lookupKey is the table key a field's value stands for: a string's text or
// a number as written.
func lookupKey(raw json.RawMessage) (string, error) {
	switch kind := jsonobj.Kind(raw); kind {
	case "a string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case "a number":
		return string(raw), nil
	default:
		return "", fmt.Errorf("is %s, want a string or a number", kind)
	}
}
