package registry

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseSize(t *testing.T) {
	good := map[string]int64{"0": 0, "512": 512, "64KiB": 64 << 10, "1MB": 1e6, "1.5 MiB": 3 << 19, "2gib": 2 << 30, "10b": 10}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "12 parsecs", "-1", "1e400", "9999999 GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	// A fresh name each run: the registry is process-global (-count=N).
	typ := fmt.Sprintf("test_twice_%d", time.Now().UnixNano())
	s := Spec{Kind: flow.KindSink, Type: typ, Build: func(*Conf) (any, error) { return nil, nil }}
	Register(s)
	if got, ok := Lookup(flow.KindSink, typ); !ok || got.Type != typ {
		t.Fatal("registered spec not found")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a type twice did not panic")
		}
	}()
	Register(s)
}

func TestConfGetters(t *testing.T) {
	c := &Conf{Values: map[string]any{"n": 3, "f": 2.5, "s": "x", "l": []any{"a", "b"}, "o": map[string]any{"k": "v"}}}
	if c.Int("n") != 3 || c.Float("f") != 2.5 || c.String("s") != "x" || len(c.Strings("l")) != 2 || c.Object("o").String("k") != "v" {
		t.Fatalf("getters disagree with values: %+v", c.Values)
	}
	if c.Int("missing") != 0 || c.Has("missing") {
		t.Fatal("a missing field must read as its zero value")
	}
}
