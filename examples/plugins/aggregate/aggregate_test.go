package main

import (
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/plugins/sdk"
	"github.com/sluicedev/sluice/plugins/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newAggregate(t *testing.T, cfg map[string]any) *sdktest.Plugin {
	t.Helper()
	a := newAggregator()
	p := sdktest.New(t, a.plugin(), sdk.WithConfig(&a.cfg))
	if err := p.Configure(cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func keyed(key, value string) sdk.Record {
	r := sdk.Record{Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

func outputs(t *testing.T, res []sdktest.Result) []string {
	t.Helper()
	var out []string
	for i, r := range res {
		if r.Err != nil || len(r.Outputs) != 1 {
			t.Fatalf("record %d: %d outputs, error %v", i, len(r.Outputs), r.Err)
		}
		out = append(out, string(r.Outputs[0].Value))
	}
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Running aggregates per record key, across batches.
func TestAggregateAttachByRecordKey(t *testing.T) {
	p := newAggregate(t, map[string]any{"field": "amount"})
	got := outputs(t, p.Process(keyed("a", `{"amount":3}`), keyed("b", `{"amount":10}`), keyed("a", `{"amount":5}`)))
	got = append(got, outputs(t, p.Process(keyed("a", `{"amount":-2.5}`), keyed("", `{"amount":1}`)))...)
	equal(t, got, []string{
		`{"amount":3,"aggregate":{"count":1,"sum":3,"min":3,"max":3,"avg":3}}`,
		`{"amount":10,"aggregate":{"count":1,"sum":10,"min":10,"max":10,"avg":10}}`,
		`{"amount":5,"aggregate":{"count":2,"sum":8,"min":3,"max":5,"avg":4}}`,
		`{"amount":-2.5,"aggregate":{"count":3,"sum":5.5,"min":-2.5,"max":5,"avg":1.8333333333333333}}`,
		`{"amount":1,"aggregate":{"count":1,"sum":1,"min":1,"max":1,"avg":1}}`,
	})
}

func TestAggregateUpdateByKeyField(t *testing.T) {
	p := newAggregate(t, map[string]any{"field": "amount", "key_field": "customer", "emit": "update"})
	got := outputs(t, p.Process(
		keyed("ignored", `{"customer":"c1","amount":2}`),
		keyed("", `{"customer":7,"amount":4}`),
		keyed("", `{"customer":"c1","amount":6}`),
	))
	equal(t, got, []string{
		`{"key":"c1","count":1,"sum":2,"min":2,"max":2,"avg":2}`,
		`{"key":"7","count":1,"sum":4,"min":4,"max":4,"avg":4}`,
		`{"key":"c1","count":2,"sum":8,"min":2,"max":6,"avg":4}`,
	})
}

func TestAggregatePassthroughHeader(t *testing.T) {
	p := newAggregate(t, map[string]any{"field": "n", "target": "running", "emit": "passthrough"})
	res := p.Process(keyed("k", `{"n":1}`), keyed("k", `{"n":2}`))
	out := res[1].Outputs[0]
	if string(out.Value) != `{"n":2}` {
		t.Errorf("value changed: %s", out.Value)
	}
	if h, ok := out.Header("running"); !ok || string(h) != `{"count":2,"sum":3,"min":1,"max":2,"avg":1.5}` {
		t.Errorf("header running = %q, %v", h, ok)
	}
}

// Bad records fail alone and do not count.
func TestAggregateBadRecords(t *testing.T) {
	p := newAggregate(t, map[string]any{"field": "amount", "key_field": "c"})
	res := p.Process(
		keyed("", `{"c":"x","amount":"3"}`),
		keyed("", `{"c":"x"}`),
		keyed("", `oops`),
		keyed("", `{"c":[1],"amount":1}`),
		keyed("", `{"c":"x","amount":1e400}`),
		keyed("", `{"c":"x","amount":4}`),
	)
	for i, want := range []string{`"amount": is a string, want a number`, `"amount": missing`, "invalid JSON", `key_field "c": is an array`, "1e400"} {
		if res[i].Err == nil || !strings.Contains(res[i].Err.Error(), want) {
			t.Errorf("record %d: error %v, want one containing %q", i, res[i].Err, want)
		}
	}
	if got := string(res[5].Outputs[0].Value); got != `{"c":"x","amount":4,"aggregate":{"count":1,"sum":4,"min":4,"max":4,"avg":4}}` {
		t.Errorf("the good record counted the bad ones: %s", got)
	}
}

func TestAggregateConfigErrors(t *testing.T) {
	a := newAggregator()
	p := sdktest.New(t, a.plugin(), sdk.WithConfig(&a.cfg))
	err := p.Configure(map[string]any{"emit": "all"})
	if err == nil || !strings.Contains(err.Error(), "field: required") || !strings.Contains(err.Error(), `emit: "all" is not one of`) {
		t.Fatalf("Configure = %v", err)
	}
}

func TestAggregateBinary(t *testing.T) {
	dir, err := filepath.Abs(".") // sdktest.Build names the binary after the directory
	if err != nil {
		t.Fatal(err)
	}
	p := sdktest.Exec(t, sdktest.Build(t, dir), nil)
	if info := p.Info(); info.Name != "aggregate" || info.ProtocolVersion != 1 {
		t.Fatalf("Info = %+v", info)
	}
	if err := p.Configure(map[string]any{"field": "v", "emit": "update"}); err != nil {
		t.Fatal(err)
	}
	p.Process(keyed("k", `{"v":1}`))
	got := outputs(t, p.Process(keyed("k", `{"v":3}`)))
	equal(t, got, []string{`{"key":"k","count":2,"sum":4,"min":1,"max":3,"avg":2}`})
	if err := p.Drain(); err != nil {
		t.Fatal(err)
	}
}
