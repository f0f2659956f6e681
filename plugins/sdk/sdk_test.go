package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/plugins/sdk"
	"github.com/sluicedev/sluice/plugins/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func values(vs ...string) []sdk.Record {
	recs := make([]sdk.Record, len(vs))
	for i, v := range vs {
		recs[i] = sdk.Record{Value: []byte(v)}
	}
	return recs
}

func upper(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
	if bytes.Contains(r.Value, []byte("poison")) {
		panic("boom")
	}
	if bytes.Contains(r.Value, []byte("bad")) {
		return nil, errors.New("bad record")
	}
	r.Value = bytes.ToUpper(r.Value)
	return []sdk.Record{r}, nil
}

func TestPanicFailsOnlyItsRecord(t *testing.T) {
	p := sdktest.New(t, sdk.Plugin{Name: "upper", Process: upper})
	res := p.Process(values("a", "poison", "bad", "b")...)
	if len(res) != 4 {
		t.Fatalf("got %d results, want 4", len(res))
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "panic: boom") {
		t.Errorf("poison record error = %v, want the panic", res[1].Err)
	}
	if res[2].Err == nil || res[2].Err.Error() != "bad record" {
		t.Errorf("bad record error = %v, want %q", res[2].Err, "bad record")
	}
	for _, i := range []int{0, 3} {
		if res[i].Err != nil || len(res[i].Outputs) != 1 {
			t.Fatalf("record %d: %+v, want one output", i, res[i])
		}
	}
	if string(res[0].Outputs[0].Value) != "A" || string(res[3].Outputs[0].Value) != "B" {
		t.Errorf("outputs %q %q, want A B", res[0].Outputs[0].Value, res[3].Outputs[0].Value)
	}
	// The stream survives: the next batch works.
	if res := p.Process(values("c")...); res[0].Err != nil || string(res[0].Outputs[0].Value) != "C" {
		t.Fatalf("batch after a panic: %+v", res[0])
	}
}

func TestOutputCounts(t *testing.T) {
	p := sdktest.New(t, sdk.Plugin{Process: func(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
		switch string(r.Value) {
		case "drop":
			return nil, nil
		case "dup":
			return []sdk.Record{r, r}, nil
		}
		return []sdk.Record{r}, nil
	}})
	res := p.Process(values("a", "drop", "dup", "b")...)
	got := []int{len(res[0].Outputs), len(res[1].Outputs), len(res[2].Outputs), len(res[3].Outputs)}
	if got[0] != 1 || got[1] != 0 || got[2] != 2 || got[3] != 1 {
		t.Fatalf("output counts %v, want [1 0 2 1]", got)
	}
	if string(res[3].Outputs[0].Value) != "b" {
		t.Fatalf("last output %q, want b", res[3].Outputs[0].Value)
	}
}

func TestRecordFieldsReachThePlugin(t *testing.T) {
	ts := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	in := sdk.Record{Key: []byte{}, Value: nil, Timestamp: ts,
		Headers: []sdk.Header{{Key: "h", Value: []byte("v")}},
		Origin:  sdk.Origin{Source: "kafka-in", Topic: "orders", Partition: 3, Offset: 42}}
	var seen sdk.Record
	p := sdktest.New(t, sdk.Plugin{Process: func(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
		seen = r
		return []sdk.Record{r}, nil
	}})
	res := p.Process(in)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if seen.Key == nil || len(seen.Key) != 0 || seen.Value != nil {
		t.Errorf("key %v (nil %v), value %v: want an empty key and a null value", seen.Key, seen.Key == nil, seen.Value)
	}
	if !seen.Timestamp.Equal(ts) || seen.Origin != in.Origin {
		t.Errorf("timestamp %v origin %+v, want %v %+v", seen.Timestamp, seen.Origin, ts, in.Origin)
	}
	if v, ok := seen.Header("h"); !ok || string(v) != "v" {
		t.Errorf("header h = %q %v", v, ok)
	}
	out := res[0].Outputs[0]
	if out.Value != nil || !out.Timestamp.Equal(ts) || len(out.Headers) != 1 {
		t.Errorf("output %+v lost fields", out)
	}
}

func TestBatchPanicIsNarrowedToItsRecords(t *testing.T) {
	var calls atomic.Int32
	p := sdktest.New(t, sdk.Plugin{ProcessBatch: func(_ context.Context, in []sdk.Record, out *sdk.Results) error {
		calls.Add(1)
		for i := range in {
			out.Emit(i, in[i]) // emitted before the panic: must be dropped for the poison record
			if string(in[i].Value) == "poison" {
				panic("batch boom")
			}
		}
		return nil
	}})
	res := p.Process(values("a", "poison", "b")...)
	if res[1].Err == nil || len(res[1].Outputs) != 0 {
		t.Errorf("poison record: %+v, want an error and no outputs", res[1])
	}
	for _, i := range []int{0, 2} {
		if res[i].Err != nil || len(res[i].Outputs) != 1 {
			t.Errorf("record %d: %+v, want its one output", i, res[i])
		}
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("ProcessBatch called %d times, want 4 (the batch, then each record)", n)
	}
}

func TestBatchErrorFailsEveryRecord(t *testing.T) {
	p := sdktest.New(t, sdk.Plugin{ProcessBatch: func(context.Context, []sdk.Record, *sdk.Results) error {
		return errors.New("service down")
	}})
	for i, r := range p.Process(values("a", "b")...) {
		if r.Err == nil || r.Err.Error() != "service down" {
			t.Errorf("record %d error = %v", i, r.Err)
		}
	}
}

func TestResultsOutOfOrderIsRefused(t *testing.T) {
	p := sdktest.New(t, sdk.Plugin{ProcessBatch: func(_ context.Context, in []sdk.Record, out *sdk.Results) error {
		out.Emit(1, in[1])
		out.Emit(0, in[0])
		return nil
	}})
	for i, r := range p.Process(values("a", "b")...) {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "input order") {
			t.Errorf("record %d error = %v, want an input-order error", i, r.Err)
		}
	}
}

type settings struct {
	Prefix string `json:"prefix"`
	Limit  int    `json:"limit"`
	TLS    struct {
		CA string `json:"ca"`
	} `json:"tls"`
}

func (s *settings) Validate() error {
	var errs []error
	if s.Limit < 0 {
		errs = append(errs, sdk.FieldErr("limit", "must be >= 0"))
	}
	if s.Prefix == "" {
		errs = append(errs, sdk.FieldErr("prefix", "required"))
	}
	if s.Prefix == "global" {
		errs = append(errs, errors.New("this config is wrong as a whole"))
	}
	return errors.Join(errs...)
}

func fieldErrors(err error) map[string]string {
	out := map[string]string{}
	if err == nil {
		return out
	}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *sdk.FieldError
		if errors.As(e, &fe) {
			out[fe.Field] = fe.Message
		}
	}
	return out
}

func TestConfigure(t *testing.T) {
	var cfg settings
	p := sdktest.New(t, sdk.Plugin{Process: func(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
		r.Value = append([]byte(cfg.Prefix), r.Value...)
		return []sdk.Record{r}, nil
	}}, sdk.WithConfig(&cfg))

	cases := []struct {
		name   string
		config any
		want   map[string]string
	}{
		{"validate", map[string]any{"limit": -1}, map[string]string{"limit": "must be >= 0", "prefix": "required"}},
		{"unknown field", map[string]any{"prefix": "x", "nope": 1}, map[string]string{"nope": "unknown field"}},
		{"wrong type", map[string]any{"prefix": "x", "tls": map[string]any{"ca": 5}}, map[string]string{"tls.ca": "want a string, got number"}},
		{"whole config", map[string]any{"prefix": "global"}, map[string]string{"": "this config is wrong as a whole"}},
		{"valid", map[string]any{"prefix": ">"}, map[string]string{}},
	}
	for _, c := range cases {
		got := fieldErrors(p.Configure(c.config))
		if len(got) != len(c.want) {
			t.Errorf("%s: errors %v, want %v", c.name, got, c.want)
			continue
		}
		for f, msg := range c.want {
			if got[f] != msg {
				t.Errorf("%s: field %q: %q, want %q", c.name, f, got[f], msg)
			}
		}
	}
	// The last, valid config is the one in force.
	if res := p.Process(values("a")...); string(res[0].Outputs[0].Value) != ">a" {
		t.Fatalf("output %q, want >a", res[0].Outputs[0].Value)
	}
}

func TestConfigRefusedWithoutWithConfig(t *testing.T) {
	p := sdktest.New(t, sdk.Plugin{Process: upper})
	if err := p.Configure(nil); err != nil {
		t.Errorf("absent config refused: %v", err)
	}
	if err := p.Configure(map[string]any{"x": 1}); err == nil || !strings.Contains(err.Error(), "takes no config") {
		t.Errorf("config to a plugin without one: %v", err)
	}
}

func TestDrainAndCloseRunHooks(t *testing.T) {
	var events []string
	p := sdktest.New(t, sdk.Plugin{
		Process: upper,
		Drain:   func(context.Context) error { events = append(events, "drain"); return nil },
		Close:   func(context.Context) error { events = append(events, "close"); return nil },
	})
	p.Process(values("a")...)
	if err := p.Drain(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if strings.Join(events, ",") != "drain,close" {
		t.Fatalf("hooks ran as %v, want drain then close", events)
	}
}

func TestNeedsExactlyOneFunc(t *testing.T) {
	if _, err := sdk.NewServer(sdk.Plugin{}); err == nil {
		t.Error("a plugin without Process or ProcessBatch was accepted")
	}
	both := sdk.Plugin{Process: upper, ProcessBatch: func(context.Context, []sdk.Record, *sdk.Results) error { return nil }}
	if _, err := sdk.NewServer(both); err == nil {
		t.Error("a plugin with both Process and ProcessBatch was accepted")
	}
	if _, err := sdk.NewServer(sdk.Plugin{Process: upper}, sdk.WithConfig(settings{})); err == nil {
		t.Error("WithConfig with a non-pointer was accepted")
	}
}

// The real thing: the test plugin built and run as a process.
func TestExecBuiltPlugin(t *testing.T) {
	bin := sdktest.Build(t, "../testdata/passthrough")
	p := sdktest.Exec(t, bin, map[string]string{"GREETING": "hi"})
	if info := p.Info(); info.Name != "passthrough" || info.ProtocolVersion != 1 {
		t.Fatalf("info %+v", info)
	}
	if err := p.Configure(map[string]any{"suffix": "!", "fail_on": "bad"}); err != nil {
		t.Fatal(err)
	}
	res := p.Process(values("a", "bad", "env")...)
	if string(res[0].Outputs[0].Value) != "a!" || res[1].Err == nil {
		t.Fatalf("results %+v", res)
	}
	env := string(res[2].Outputs[0].Value)
	if !strings.Contains(env, "GREETING=hi") {
		t.Errorf("plugin environment %q lacks GREETING=hi", env)
	}
	if p.Pid() == 0 {
		t.Error("no pid for a process")
	}
}
