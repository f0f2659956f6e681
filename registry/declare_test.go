package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// testConfig is the typed config of the tiny component these tests
// declare: one field of each Go type Bind reads, and a section.
type testConfig struct {
	Name   string
	Mode   string
	Query  string
	Count  int
	Ratio  float64
	Sync   bool
	Wait   time.Duration
	Size   ByteSize
	Tags   []string
	Labels map[string]string
	Extra  any
	TLS    struct {
		Enabled bool
		CA      string
		Retries int
	}
}

func testFields(c *testConfig) []Field {
	return []Field{
		Bind(&c.Name, "name", "a required string", Required(), Example("orders")),
		Bind(&c.Mode, "mode", "an enum", OneOf("fast", "safe"), Default("safe")),
		Bind(&c.Query, "query", "an expression", AsExpr()),
		Bind(&c.Count, "count", "an int", Default(3), Range(1, 10)),
		Bind(&c.Ratio, "ratio", "a float", Default(0.5), Range(0.0, 1.0)),
		Bind(&c.Sync, "sync", "a bool", Default(true)),
		Bind(&c.Wait, "wait", "a duration", Default(500*time.Millisecond), Range(time.Millisecond, time.Minute)),
		Bind(&c.Size, "size", "a size", Default(ByteSize(1<<20)), Range(ByteSize(1), ByteSize(1<<30)), Example(ByteSize(64<<10))),
		Bind(&c.Tags, "tags", "a list", Default([]string{"a", "b"})),
		Bind(&c.Labels, "labels", "a map", Default(map[string]string{"k": "v"})),
		Bind(&c.Extra, "extra", "free-form"),
		Section("tls", "a section",
			Bind(&c.TLS.Enabled, "enabled", "a nested bool", Default(false)),
			Bind(&c.TLS.CA, "ca", "a nested string"),
			Bind(&c.TLS.Retries, "retries", "a nested int", Default(2), AtLeast(0)),
		),
	}
}

func byName(fields []Field, name string) Field {
	for _, f := range fields {
		if f.Name == name {
			return f
		}
	}
	panic("no field " + name)
}

func TestBindInfersTheTypeFromTheGoType(t *testing.T) {
	fields := testFields(new(testConfig))
	for name, want := range map[string][2]FieldType{
		"name": {String}, "mode": {String}, "query": {Expr}, "count": {Int}, "ratio": {Float}, "sync": {Bool},
		"wait": {Duration}, "size": {Size}, "tags": {List, String}, "labels": {Map, String}, "extra": {Any}, "tls": {Object},
	} {
		if f := byName(fields, name); f.Type != want[0] || f.Elem != want[1] {
			t.Errorf("%s: type %s of %q, want %s of %q", name, f.Type, f.Elem, want[0], want[1])
		}
	}
	if f := byName(fields, "name"); !f.Required || f.Default != nil {
		t.Errorf("name: required %v, default %v; want required, no default", f.Required, f.Default)
	}
	if f := byName(fields, "mode"); !slices.Equal(f.Enum, []string{"fast", "safe"}) {
		t.Errorf("mode: enum %v", f.Enum)
	}
}

func TestBindDefaultsAndBoundsInDocsForm(t *testing.T) {
	fields := testFields(new(testConfig))
	for name, want := range map[string]any{"mode": "safe", "count": 3, "ratio": 0.5, "sync": true, "wait": "500ms", "size": "1MiB"} {
		if got := byName(fields, name).Default; got != want {
			t.Errorf("%s: default %#v, want %#v", name, got, want)
		}
	}
	if got := byName(fields, "size").Example; got != "64KiB" {
		t.Errorf("size: example %#v, want \"64KiB\"", got)
	}
	for name, want := range map[string]string{"count": "1–10", "ratio": "0–1", "wait": "1ms–1m", "size": "1B–1GiB"} {
		if got := byName(fields, name).RangeText(); got != want {
			t.Errorf("%s: range %q, want %q", name, got, want)
		}
	}
	if got := byName(byName(fields, "tls").Fields, "retries").RangeText(); got != "at least 0" {
		t.Errorf("tls.retries: range %q, want \"at least 0\"", got)
	}
	// The docs render the declared default as a user writes it.
	var b strings.Builder
	writeFields(&b, fields, "")
	for _, row := range []string{"| `wait` | duration | `500ms` | 1ms–1m |", "| `size` | size | `1MiB` | 1B–1GiB |", "| `tls.retries` | int | `2` | at least 0 |"} {
		if !strings.Contains(b.String(), row) {
			t.Errorf("docs lack the row %q:\n%s", row, b.String())
		}
	}
}

func TestBindContradictionsPanic(t *testing.T) {
	var (
		s   string
		n   int
		d   time.Duration
		z   ByteSize
		i64 int64
	)
	for name, bind := range map[string]func(){
		"an int default on a size":       func() { Bind(&z, "k", "", Default(1)) },
		"a string default on a duration": func() { Bind(&d, "k", "", Default("1s")) },
		"an int default on a duration":   func() { Bind(&d, "k", "", Default(1000)) },
		"a float default on an int":      func() { Bind(&n, "k", "", Default(1.0)) },
		"int bounds on a duration":       func() { Bind(&d, "k", "", Range(1, 10)) },
		"int bounds on a size":           func() { Bind(&z, "k", "", Range(1, 10)) },
		"a duration bound on an int":     func() { Bind(&n, "k", "", AtLeast(time.Second)) },
		"a float bound on an int":        func() { Bind(&n, "k", "", AtLeast(0.5)) },
		"a default outside its enum":     func() { Bind(&s, "k", "", OneOf("a", "b"), Default("c")) },
		"a default outside its range":    func() { Bind(&n, "k", "", Range(1, 10), Default(0)) },
		"a duration default below":       func() { Bind(&d, "k", "", Range(time.Second, time.Minute), Default(time.Millisecond)) },
		"an enum on an int":              func() { Bind(&n, "k", "", OneOf("a")) },
		"an expression on an int":        func() { Bind(&n, "k", "", AsExpr()) },
		"required with a default":        func() { Bind(&s, "k", "", Required(), Default("x")) },
		"a Go type no field reads":       func() { Bind(&i64, "k", "") },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: Bind did not panic", name)
				} else {
					t.Logf("%s: %v", name, r)
				}
			}()
			bind()
		}()
	}
}

func TestDefaults(t *testing.T) {
	c := Defaults(testFields)
	if c.Mode != "safe" || c.Count != 3 || c.Ratio != 0.5 || !c.Sync || c.Wait != 500*time.Millisecond || c.Size != 1<<20 ||
		!slices.Equal(c.Tags, []string{"a", "b"}) || c.Labels["k"] != "v" || len(c.Labels) != 1 || c.TLS.Retries != 2 {
		t.Errorf("defaults: %+v", c)
	}
	if c.Name != "" || c.Query != "" || c.Extra != nil || c.TLS.Enabled || c.TLS.CA != "" {
		t.Errorf("a key without a default must stay zero: %+v", c)
	}
}

// TestDeclareBuildsATypedConfig declares the tiny component and builds it
// from values as the config loader produces them: Build receives a typed
// config holding them, the declared defaults where a key was left out.
func TestDeclareBuildsATypedConfig(t *testing.T) {
	typ := fmt.Sprintf("declare_test_%d", time.Now().UnixNano()) // the registry is process-global (-count=N)
	var got *testConfig
	Declare(Component[testConfig]{
		Kind: flow.KindStage, Type: typ, Summary: "a test component", Fields: testFields,
		Build: func(c *testConfig, n *Conf) (any, error) {
			if n.ID != "node" {
				t.Errorf("Build got node %q", n.ID)
			}
			got = c
			return nil, nil
		},
	})
	t.Cleanup(func() { mu.Lock(); delete(specs[flow.KindStage], typ); mu.Unlock() }) // keep it out of other tests' walks
	spec, ok := Lookup(flow.KindStage, typ)
	if !ok {
		t.Fatal("declared component not registered")
	}
	if len(spec.Fields) != 12 || spec.Fields[11].Name != "tls" || len(spec.Fields[11].Fields) != 3 {
		t.Fatalf("registered fields: %+v", spec.Fields)
	}
	_, err := spec.Build(&Conf{ID: "node", Values: map[string]any{
		"name": "orders", "count": 7, "wait": 2 * time.Second, "size": int64(4096),
		"tags": []any{"x"}, "labels": map[string]any{"a": "b"}, "extra": []any{1},
		"tls": map[string]any{"ca": "ca.pem"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults(testFields)
	want.Name, want.Count, want.Wait, want.Size, want.Tags = "orders", 7, 2*time.Second, 4096, []string{"x"}
	want.Labels, want.Extra, want.TLS.CA = map[string]string{"a": "b"}, []any{1}, "ca.pem"
	if fmt.Sprint(*got) != fmt.Sprint(want) {
		t.Errorf("Build got\n %+v\nwant\n %+v", *got, want)
	}
	// Nodes do not share a config.
	if _, err := spec.Build(&Conf{ID: "node", Values: map[string]any{"name": "other"}}); err != nil {
		t.Fatal(err)
	}
	if got.Name != "other" || got.Count != 3 || got.TLS.CA != "" {
		t.Errorf("second build: %+v", *got)
	}
}

func TestCheck(t *testing.T) {
	c := Defaults(testFields)
	if err := Check(testFields, &c); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	// The zero value of a key without a default is the key left out.
	c.Name, c.TLS.CA = "", ""
	if err := Check(testFields, &c); err != nil {
		t.Fatalf("keys left out: %v", err)
	}
	c.Mode, c.Count, c.Wait, c.Size, c.TLS.Retries = "", 11, 0, 2<<30, -1
	err := Check(testFields, &c)
	for field, msg := range map[string]string{
		"mode":        `unknown mode "" (want fast, safe)`,
		"count":       "11 is above 10",
		"wait":        "0s is below 1ms",
		"size":        "2GiB is above 1GiB",
		"tls.retries": "-1 is below 0",
	} {
		found := false
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var fe *FieldError
			if errors.As(e, &fe) && fe.Field == field && fe.Err.Error() == msg {
				found = true
			}
		}
		if !found {
			t.Errorf("Check: no %s error %q in\n%v", field, msg, err)
		}
	}
}
