package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/sluicedev/sluice/examples/plugins/internal/jsonobj"
	"github.com/sluicedev/sluice/plugins/sdk"
)

// How a record leaves.
const (
	emitAttach      = "attach"      // value + aggregate under target
	emitUpdate      = "update"      // the aggregate alone
	emitPassthrough = "passthrough" // value unchanged, aggregate in a header
)

type config struct {
	Field    string `json:"field"`
	KeyField string `json:"key_field"`
	Target   string `json:"target"`
	Emit     string `json:"emit"`
}

// Validate checks the config and fills in defaults.
func (c *config) Validate() error {
	var errs []error
	if c.Field == "" {
		errs = append(errs, sdk.FieldErr("field", "required: the numeric field to aggregate"))
	}
	if c.Target == "" {
		c.Target = "aggregate"
	}
	switch c.Emit {
	case "":
		c.Emit = emitAttach
	case emitAttach, emitUpdate, emitPassthrough:
	default:
		errs = append(errs, sdk.FieldErr("emit", fmt.Sprintf("%q is not one of attach, update, passthrough", c.Emit)))
	}
	return errors.Join(errs...)
}

// stats is one key's running aggregate.
type stats struct {
	Count int64   `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Avg   float64 `json:"avg"`
}

func (s *stats) add(x float64) {
	if s.Count == 0 || x < s.Min {
		s.Min = x
	}
	if s.Count == 0 || x > s.Max {
		s.Max = x
	}
	s.Count++
	s.Sum += x
	s.Avg = s.Sum / float64(s.Count)
}

// aggregator is the plugin. The SDK answers batches one at a time, but the
// state is guarded anyway: Drain reads it from another goroutine.
type aggregator struct {
	cfg config

	mu   sync.Mutex
	keys map[string]*stats
}

func newAggregator() *aggregator { return &aggregator{keys: map[string]*stats{}} }

func (a *aggregator) plugin() sdk.Plugin {
	return sdk.Plugin{Name: "aggregate", Version: "1.0.0", Process: a.process, Drain: a.drain}
}

func (a *aggregator) process(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
	obj, err := jsonobj.Parse(r.Value)
	if err != nil {
		return nil, fmt.Errorf("aggregate: value: %w", err)
	}
	x, err := number(obj, a.cfg.Field)
	if err != nil {
		return nil, fmt.Errorf("aggregate: field %q: %w", a.cfg.Field, err)
	}
	key := string(r.Key)
	if a.cfg.KeyField != "" {
		if key, err = keyOf(obj, a.cfg.KeyField); err != nil {
			return nil, fmt.Errorf("aggregate: key_field %q: %w", a.cfg.KeyField, err)
		}
	}

	a.mu.Lock()
	s := a.keys[key]
	if s == nil {
		s = &stats{}
		a.keys[key] = s
	}
	next := *s
	next.add(x)
	agg, err := json.Marshal(next)
	if err == nil {
		*s = next // only a record that leaves counts
	}
	a.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("aggregate: key %q: %w", key, err) // a sum beyond float64
	}

	switch a.cfg.Emit {
	case emitUpdate:
		r.Value, err = json.Marshal(struct {
			Key string `json:"key"`
			stats
		}{key, next})
		if err != nil {
			return nil, fmt.Errorf("aggregate: %w", err)
		}
	case emitPassthrough:
		r.SetHeader(a.cfg.Target, agg)
	default:
		r.Value = obj.Set(a.cfg.Target, agg)
	}
	return []sdk.Record{r}, nil
}

func (a *aggregator) drain(context.Context) error {
	a.mu.Lock()
	n := len(a.keys)
	a.mu.Unlock()
	sdk.Logger().Info("aggregate drained", "keys", n)
	return nil
}

// number reads a numeric member of obj.
func number(obj jsonobj.Object, field string) (float64, error) {
	raw, ok := obj.Get(field)
	if !ok {
		return 0, errors.New("missing")
	}
	if kind := jsonobj.Kind(raw); kind != "a number" {
		return 0, fmt.Errorf("is %s, want a number", kind)
	}
	var x float64
	if err := json.Unmarshal(raw, &x); err != nil {
		return 0, err
	}
	return x, nil
}

// keyOf reads a grouping key: a string's text or a number as written.
func keyOf(obj jsonobj.Object, field string) (string, error) {
	raw, ok := obj.Get(field)
	if !ok {
		return "", errors.New("missing")
	}
	switch kind := jsonobj.Kind(raw); kind {
	case "a string":
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case "a number":
		return string(raw), nil
	default:
		return "", fmt.Errorf("is %s, want a string or a number", kind)
	}
}
