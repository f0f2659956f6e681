package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/plugins/sdk"
	"github.com/sluicedev/sluice/plugins/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var table = map[string]any{"c1": map[string]any{"tier": "gold"}, "42": map[string]any{"tier": "silver"}}

func newEnrich(t *testing.T, cfg map[string]any) *sdktest.Plugin {
	t.Helper()
	var e enricher
	p := sdktest.New(t, e.plugin(), sdk.WithConfig(&e.cfg))
	if err := p.Configure(cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func rec(v string) sdk.Record { return sdk.Record{Value: []byte(v)} }

// one runs a single record and returns its only output's value, or its
// error.
func one(t *testing.T, p *sdktest.Plugin, v string) (string, error) {
	t.Helper()
	res := p.Process(rec(v))[0]
	if res.Err != nil {
		return "", res.Err
	}
	if len(res.Outputs) != 1 {
		t.Fatalf("%s: %d outputs, want 1", v, len(res.Outputs))
	}
	return string(res.Outputs[0].Value), nil
}

func TestEnrichAddsTheEntry(t *testing.T) {
	p := newEnrich(t, map[string]any{"field": "customer", "table": table, "target": "customer_info"})
	for in, want := range map[string]string{
		// Members keep their order and bytes, big numbers included.
		`{"id":12345678901234567890,"customer":"c1"}`:   `{"id":12345678901234567890,"customer":"c1","customer_info":{"tier":"gold"}}`,
		`{"customer": 42}`:                              `{"customer":42,"customer_info":{"tier":"silver"}}`,
		`{"customer_info":"old","customer":"c1","z":1}`: `{"customer_info":{"tier":"gold"},"customer":"c1","z":1}`,
	} {
		got, err := one(t, p, in)
		if err != nil || got != want {
			t.Errorf("%s:\n got %s, %v\nwant %s", in, got, err, want)
		}
	}
}

func TestEnrichOnMissing(t *testing.T) {
	cases := []struct {
		mode, in, want, err string
	}{
		{"skip", `{"customer":"nobody"}`, `{"customer":"nobody"}`, ""},
		{"skip", `{"other":1}`, `{"other":1}`, ""},
		{"", `{"customer":null}`, `{"customer":null}`, ""}, // skip is the default
		{"null", `{"customer":"nobody"}`, `{"customer":"nobody","customer_info":null}`, ""},
		{"null", `{}`, `{"customer_info":null}`, ""},
		{"error", `{"customer":"nobody"}`, "", `no table entry for customer "nobody"`},
		{"error", `{"x":1}`, "", `record has no "customer"`},
	}
	for _, c := range cases {
		cfg := map[string]any{"field": "customer", "table": table}
		if c.mode != "" {
			cfg["on_missing"] = c.mode
		}
		p := newEnrich(t, cfg)
		got, err := one(t, p, c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s %s: error %v, want one containing %q", c.mode, c.in, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s %s: got %s, %v; want %s", c.mode, c.in, got, err, c.want)
		}
	}
}

// Bad records fail alone; the rest of the batch is enriched.
func TestEnrichBadRecordsFailAlone(t *testing.T) {
	p := newEnrich(t, map[string]any{"field": "customer", "table": table})
	res := p.Process(rec(`not json`), rec(`[1]`), rec(`{"customer":{"id":1}}`), rec(`{"customer":"c1"}`))
	for i, want := range []string{"invalid JSON", "want a JSON object, got an array", `field "customer": is an object`} {
		if res[i].Err == nil || !strings.Contains(res[i].Err.Error(), want) {
			t.Errorf("record %d: error %v, want one containing %q", i, res[i].Err, want)
		}
	}
	if got := string(res[3].Outputs[0].Value); got != `{"customer":"c1","customer_info":{"tier":"gold"}}` {
		t.Errorf("good record: %s", got)
	}
}

func TestEnrichConfigErrors(t *testing.T) {
	var e enricher
	p := sdktest.New(t, e.plugin(), sdk.WithConfig(&e.cfg))
	fields := func(err error) map[string]string {
		out := map[string]string{}
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var fe *sdk.FieldError
			if !errors.As(e, &fe) {
				t.Fatalf("%v is not a FieldError", e)
			}
			out[fe.Field] = fe.Message
		}
		return out
	}
	got := fields(p.Configure(map[string]any{"table": map[string]any{}, "on_missing": "drop"}))
	for _, f := range []string{"field", "table", "on_missing"} {
		if got[f] == "" {
			t.Errorf("no error for %s in %v", f, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("errors %v, want exactly field, table and on_missing", got)
	}
	got = fields(p.Configure(map[string]any{"field": "c", "table": table, "tabel": 1}))
	if got["tabel"] != "unknown field" {
		t.Errorf("misspelt field: %v", got)
	}
	if err := p.Configure(map[string]any{"field": "c", "table": table}); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

// buildHere builds this package. sdktest.Build names the binary after the
// last element of its directory argument, so "." would name the temp
// directory itself: give it the absolute path.
func buildHere(t *testing.T) string {
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return sdktest.Build(t, dir)
}

// The built binary, run as sluice runs it.
func TestEnrichBinary(t *testing.T) {
	p := sdktest.Exec(t, buildHere(t), nil)
	if info := p.Info(); info.Name != "enrich" || info.Version == "" || info.ProtocolVersion != 1 {
		t.Fatalf("Info = %+v", info)
	}
	if err := p.Configure(map[string]any{"field": "customer", "table": table, "target": "who"}); err != nil {
		t.Fatal(err)
	}
	res := p.Process(rec(`{"customer":"c1"}`), rec(`{"customer":"c9"}`))
	if got := string(res[0].Outputs[0].Value); got != `{"customer":"c1","who":{"tier":"gold"}}` {
		t.Errorf("got %s", got)
	}
	if got := string(res[1].Outputs[0].Value); got != `{"customer":"c9"}` {
		t.Errorf("missing entry: got %s", got)
	}
	if err := p.Drain(); err != nil {
		t.Fatal(err)
	}
}
