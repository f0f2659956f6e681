package expr

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func rec(value string) *flow.Record {
	return &flow.Record{
		Key:       []byte("k1"),
		Value:     []byte(value),
		Headers:   []flow.Header{{Key: "h", Value: []byte("a")}, {Key: "h", Value: []byte("b")}},
		Timestamp: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Origin:    flow.Origin{Source: "s", Topic: "t", Partition: 3, Offset: 42},
	}
}

func TestVariables(t *testing.T) {
	r := rec(`{"seq": 7, "name": "x\u00e9", "f": 1.5, "ok": true, "o": {"a": [1, "b"]}}`)
	cases := map[string]any{
		`value.seq`:                    7,
		`value["name"]`:                "xé",
		`value.f * 2`:                  3.0,
		`value.ok && true`:             true,
		`value.o.a[1]`:                 "b",
		`value.missing`:                nil,
		`value?.missing ?? "d"`:        "d",
		`len(value)`:                   5,
		`raw`:                          string(r.Value),
		`key`:                          "k1",
		`headers.h`:                    "b",
		`topic`:                        "t",
		`partition`:                    3,
		`offset + 1`:                   43,
		`timestamp.Year()`:             2024,
		`value.seq > 5 ? "big" : "no"`: "big",
	}
	for src, want := range cases {
		p, err := Compile(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		got, err := p.Eval(r)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", src, got, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		src  string
		opts []Option
		want string
	}{
		{`vlue.seq`, nil, "unknown name vlue (did you mean value?)"},
		{`zzzzzz + 1`, nil, "variables: value, raw"},
		{`value.seq +`, nil, "unexpected token"},
		{`1 + 2`, []Option{Expect(Bool)}, "must return a bool"},
		{`key`, []Option{Expect(Number)}, "must return a number"},
		{`  `, nil, "empty expression"},
	}
	for _, c := range cases {
		_, err := Compile(c.src, c.opts...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile(%q) error = %v, want it to contain %q", c.src, err, c.want)
		}
	}
	// A type only known at run time compiles; the Eval variant checks it.
	p, err := Compile(`value.x`, Expect(Bool))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.EvalBool(rec(`{"x": 3}`))
	var te *TypeError
	if !errors.As(err, &te) || te.Want != Bool {
		t.Fatalf("EvalBool of a number: err = %v, want a TypeError", err)
	}
}

func TestBadJSONIsARecordError(t *testing.T) {
	members := MustCompile(`value.seq`)
	whole := MustCompile(`value`)
	keyOnly := MustCompile(`key + "!"`)
	for _, v := range []string{``, `{"seq": 1`, `{"seq": 01}`, `{"seq": 1} x`, `{seq: 1}`, `{"a": "\x01"}`, `nul`} {
		r := rec(v)
		var se *SyntaxError
		if _, err := members.Eval(r); !errors.As(err, &se) {
			t.Errorf("value.seq of %q: err = %v, want SyntaxError", v, err)
		}
		if _, err := whole.Eval(r); !errors.As(err, &se) {
			t.Errorf("value of %q: err = %v, want SyntaxError", v, err)
		}
		if got, err := keyOnly.Eval(r); err != nil || got != "k1!" {
			t.Errorf("key of a record with value %q = %v, %v; the value must not be read", v, got, err)
		}
	}
	var ne *NotObjectError
	if _, err := members.Eval(rec(`[1, 2]`)); !errors.As(err, &ne) || ne.Kind != "array" {
		t.Errorf("value.seq of an array: err = %v, want NotObjectError", err)
	}
}

func TestEvalConversions(t *testing.T) {
	r := rec(`{"n": 42, "f": 2.5, "s": "x", "ms": 1700000000000, "t": "2024-01-02T03:04:05Z", "l": ["a", 1]}`)
	e := NewEnv()
	e.Bind(r)
	str := func(src string) string {
		s, err := e.EvalString(MustCompile(src))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		return s
	}
	if got := str(`value.n`); got != "42" {
		t.Errorf("EvalString(value.n) = %q", got)
	}
	if got := str(`value.l`); got != `["a",1]` {
		t.Errorf("EvalString(value.l) = %q", got)
	}
	if got := str(`value.s + "y"`); got != "xy" {
		t.Errorf("EvalString(concat) = %q", got)
	}
	if _, err := e.EvalString(MustCompile(`value.nothing`)); err == nil {
		t.Error("EvalString of nil: want an error")
	}
	if f, err := e.EvalFloat(MustCompile(`value.f * value.n`)); err != nil || f != 105 {
		t.Errorf("EvalFloat = %v, %v", f, err)
	}
	if _, err := e.EvalFloat(MustCompile(`value.s`)); err == nil {
		t.Error("EvalFloat of a string: want an error")
	}
	for src, want := range map[string]time.Time{
		`value.ms`:  time.UnixMilli(1700000000000),
		`value.t`:   time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		`timestamp`: r.Timestamp,
	} {
		got, err := e.EvalTime(MustCompile(src))
		if err != nil || !got.Equal(want) {
			t.Errorf("EvalTime(%s) = %v, %v; want %v", src, got, err, want)
		}
	}
}

// One Env serves several programs and records; members added by a late
// program are read for the record already bound.
func TestEnvSharedAcrossPrograms(t *testing.T) {
	a := MustCompile(`value.a + 1`)
	b := MustCompile(`value.b + value.a`)
	e := NewEnv(a)
	for i, v := range []string{`{"a": 1, "b": 10}`, `{"b": 20, "a": 2}`} {
		e.Bind(rec(v))
		x, err := e.Eval(a)
		if err != nil || x != i+2 {
			t.Fatalf("record %d: a = %v, %v", i, x, err)
		}
		y, err := e.Eval(b)
		if err != nil || y != 10*(i+1)+i+1 {
			t.Fatalf("record %d: b = %v, %v", i, y, err)
		}
	}
}

func TestObjectLiteralMatchesGenericEncoding(t *testing.T) {
	r := rec(`{"seq": 12345, "f": 1.50, "nested": {"z": [1, {"y": null}], "a": "\u00e9"}, "s": "q\"uote"}`)
	for _, src := range []string{
		`{"seq": value.seq, "double": value.seq * 2}`,
		`{"copy": value.nested, "f": value.f, "missing": value.nope, "k": key}`,
		`{"a": {"b": value.seq + 1, "c": value?.s}, "list": [value.seq, raw]}`,
		`{"t": timestamp, "h": headers, "x": value.seq / 4}`,
	} {
		p := MustCompile(src)
		if !p.IsObject() {
			t.Fatalf("%s: not recognised as an object literal", src)
		}
		e := NewEnv(p)
		e.Bind(r)
		fast, err := e.AppendJSON(nil, p)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		v, err := e.Eval(p)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(fast, &a); err != nil {
			t.Fatalf("%s: AppendJSON wrote invalid JSON %s: %v", src, fast, err)
		}
		_ = json.Unmarshal(slow, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s:\n AppendJSON %s\n encoding   %s", src, fast, slow)
		}
	}
	// Keys keep the order they were written in.
	e := NewEnv()
	e.Bind(r)
	got, _ := e.AppendJSON(nil, MustCompile(`{"z": 1, "a": value.seq}`))
	if string(got) != `{"z":1,"a":12345}` {
		t.Errorf("got %s", got)
	}
}

func TestProgramConcurrentEval(t *testing.T) {
	p := MustCompile(`value.seq % 2 == 0`)
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 1000; i++ {
				ok, err := p.EvalBool(rec(`{"seq": ` + string(rune('0'+i%10)) + `}`))
				if err != nil || ok != (i%2 == 0) {
					done <- errors.New("wrong result")
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendBytes(t *testing.T) {
	e := NewEnv()
	e.Bind(rec(`{"s": "text", "n": 5, "o": {"a": 1}}`))
	for src, want := range map[string]string{
		`value.s`:            "text",
		`value.n * 2`:        "10",
		`value.o`:            `{"a":1}`,
		`{"x": value.s}`:     `{"x":"text"}`,
		`[value.s, value.n]`: `["text",5]`,
		`raw`:                `{"s": "text", "n": 5, "o": {"a": 1}}`,
	} {
		got, ok, err := e.AppendBytes([]byte(">"), MustCompile(src))
		if err != nil || !ok || string(got) != ">"+want {
			t.Errorf("%s: %q, %v, %v; want %q", src, got, ok, err, want)
		}
	}
	if got, ok, err := e.AppendBytes(nil, MustCompile(`value.none`)); ok || err != nil || len(got) != 0 {
		t.Errorf("nil result: %q, %v, %v", got, ok, err)
	}
}

func TestVariable(t *testing.T) {
	for src, want := range map[string]string{
		"value":          "value",
		" key ":          "key",
		"topic":          "topic",
		"value.seq":      "",
		"value ?? 1":     "",
		`"value"`:        "",
		"string(value)":  "",
		"{\"v\": value}": "",
	} {
		if got := MustCompile(src).Variable(); got != want {
			t.Errorf("Variable of %q = %q, want %q", src, got, want)
		}
	}
}
