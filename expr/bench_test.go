package expr

import (
	"testing"

	"github.com/sluicedev/sluice/flow"
)

var benchRecord = flow.Record{Value: []byte(`{"seq":12345}`)}

// BenchmarkExprFilter is the filter stage's hot path: one Env per
// goroutine, Bind and EvalBool per record.
func BenchmarkExprFilter(b *testing.B) {
	p := MustCompile(`value.seq % 2 == 0`, Expect(Bool))
	e := NewEnv(p)
	r := benchRecord
	threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		e.Bind(&r)
		if ok, err := e.EvalBool(p); err != nil || ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkExprMap is the map stage's hot path for an object literal:
// the JSON is written field by field into a reused buffer.
func BenchmarkExprMap(b *testing.B) {
	p := MustCompile(`{"seq": value.seq, "double": value.seq * 2}`)
	e := NewEnv(p)
	r := benchRecord
	var buf []byte
	threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		e.Bind(&r)
		var err error
		if buf, err = e.AppendJSON(buf[:0], p); err != nil {
			b.Fatal(err)
		}
	}
	if string(buf) != `{"seq":12345,"double":24690}` {
		b.Fatalf("got %s", buf)
	}
}

// BenchmarkExprMapGeneric evaluates the same literal as a map and encodes
// it: the path the object-literal shortcut avoids.
func BenchmarkExprMapGeneric(b *testing.B) {
	p := MustCompile(`{"seq": value.seq, "double": value.seq * 2}`)
	e := NewEnv(p)
	r := benchRecord
	var buf []byte
	threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		e.Bind(&r)
		v, err := e.Eval(p)
		if err != nil {
			b.Fatal(err)
		}
		if buf, err = AppendJSON(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExprFilterWholeValue reads value dynamically, forcing a full
// decode of the value.
func BenchmarkExprFilterWholeValue(b *testing.B) {
	p := MustCompile(`value["s" + "eq"] % 2 == 0`, Expect(Bool))
	e := NewEnv(p)
	r := benchRecord
	threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		e.Bind(&r)
		if _, err := e.EvalBool(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExprProgramEval is the convenience form (pooled Env).
func BenchmarkExprProgramEval(b *testing.B) {
	p := MustCompile(`value.seq % 2 == 0`, Expect(Bool))
	r := benchRecord
	threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.EvalBool(&r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanMembers is the scanner alone: find value.seq in {"seq":12345}.
func BenchmarkScanMembers(b *testing.B) {
	names := []string{"seq"}
	spans := make([]span, 1)
	s := scanner{}
	threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		s.b, s.i = benchRecord.Value, 0
		if err := s.members(names, spans); err != nil {
			b.Fatal(err)
		}
	}
}

// processValue is a record of the whole-process benchmark
// (scripts/bench/process.yaml): seq and a 76-byte string.
var processValue = flow.Record{Value: []byte(`{"seq":1234567,"text":"the quick brown fox jumps over the lazy dog while sluice counts every record"}`)}

// BenchmarkProcessRowMap is the map of the whole-process benchmark:
// `value` alone, on a value already in the encoder's form.
func BenchmarkProcessRowMap(b *testing.B) {
	p := MustCompile(`value`)
	e := NewEnv(p)
	r := processValue
	var buf []byte
	threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		e.Bind(&r)
		var ok bool
		var err error
		if buf, ok, err = e.AppendBytes(buf[:0], p); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
	if string(buf) != string(processValue.Value) {
		b.Fatalf("got %s", buf)
	}
}

// BenchmarkProcessRowFilter is the filter of the whole-process benchmark.
func BenchmarkProcessRowFilter(b *testing.B) {
	p := MustCompile(`value.seq % 2 == 0`, Expect(Bool))
	e := NewEnv(p)
	r := processValue
	threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		e.Bind(&r)
		if ok, err := e.EvalBool(p); err != nil || ok {
			b.Fatal(ok, err)
		}
	}
}
