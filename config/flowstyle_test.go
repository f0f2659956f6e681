package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Issue 10, item 7: ${VAR} and ${VAR:-default} stand wherever a value
// can, in flow style as in block style, quoted or not, for every type of
// field, and an error inside one points at it.

func init() {
	registry.Register(registry.Spec{
		Kind: flow.KindSource, Type: "test_typed",
		Fields: []registry.Field{
			{Name: "s", Type: registry.String},
			{Name: "i", Type: registry.Int},
			{Name: "f", Type: registry.Float},
			{Name: "b", Type: registry.Bool},
			{Name: "d", Type: registry.Duration},
			{Name: "z", Type: registry.Size},
			{Name: "ls", Type: registry.List, Elem: registry.String},
			{Name: "li", Type: registry.List, Elem: registry.Int},
			{Name: "ms", Type: registry.Map, Elem: registry.String},
			{Name: "md", Type: registry.Map, Elem: registry.Duration},
			{Name: "o", Type: registry.Object, Fields: []registry.Field{{Name: "on", Type: registry.Bool}}},
		},
		Build: func(c *registry.Conf) (any, error) {
			remember(c)
			opened.Add(1)
			return &gen{id: c.ID}, nil
		},
	})
}

// typedValue is one field of test_typed, written as ref, and what it
// reads as with the variables unset (def) and set by typedEnv (set).
type typedValue struct {
	key, ref string
	def, set any
}

var typedEnv = []string{"S=text, with a comma", "I=7", "F=2.5", "B=false", "D=3s", "Z=2KiB", "T=#hash"}

var typedValues = []typedValue{
	{"s", "${S:-a, b #c}", "a, b #c", "text, with a comma"},
	{"i", "${I:-3}", 3, 7},
	{"f", "${F:-1.5}", 1.5, 2.5},
	{"b", "${B:-true}", true, false},
	{"d", "${D:-250ms}", 250 * time.Millisecond, 3 * time.Second},
	{"z", "${Z:-64KiB}", int64(64 << 10), int64(2 << 10)},
}

// typedFile writes test_typed with every field given through a
// reference, in flow or block style, each scalar quoted by q.
func typedFile(flowStyle bool, q func(string) string) string {
	var fields []string
	for _, v := range typedValues {
		fields = append(fields, v.key+": "+q(v.ref))
	}
	ls := "[" + q("${T:-}") + ", " + q("x${I:-1}y") + ", " + q("$${T}") + "]"
	li := "[" + q("${I:-1}") + ", " + q("${NONE:-${I:-2}}") + "]"
	ms := "{a: " + q("${T:-t}") + ", b: " + q("${S:-}") + "}"
	md := "{a: " + q("${D:-1s}") + "}"
	o := "{on: " + q("${B:-true}") + "}"
	fields = append(fields, "ls: "+ls, "li: "+li, "ms: "+ms, "md: "+md, "o: "+o)
	sink := "sinks:\n  out: {type: test_sink, inputs: [t], path: " + q("${P:-out.txt}") + "}\n"
	if flowStyle {
		return "sources:\n  t: {type: test_typed, " + strings.Join(fields, ", ") + "}\n" + sink
	}
	return "sources:\n  t:\n    type: test_typed\n    " + strings.Join(fields, "\n    ") + "\n" + sink
}

func TestReferencesStandWhereverAValueCan(t *testing.T) {
	quotings := map[string]func(string) string{
		"plain":  func(s string) string { return s },
		"double": func(s string) string { return `"` + s + `"` },
		"single": func(s string) string { return "'" + s + "'" },
	}
	for _, flowStyle := range []bool{true, false} {
		for qname, q := range quotings {
			for _, set := range []bool{false, true} {
				name := fmt.Sprintf("flow=%v/%s/set=%v", flowStyle, qname, set)
				t.Run(name, func(t *testing.T) {
					resetFakes()
					var environ []string
					if set {
						environ = typedEnv
					}
					path := writeFile(t, typedFile(flowStyle, q))
					c, err := Compile(path, Options{Environ: environ}, nil)
					if err != nil {
						t.Fatalf("%v\nfile:\n%s", err, typedFile(flowStyle, q))
					}
					defer c.Close()
					got := builtConf("t")
					for _, v := range typedValues {
						want := v.def
						if set {
							want = v.set
						}
						if g := got.Values[v.key]; !reflect.DeepEqual(g, want) {
							t.Errorf("%s: %#v, want %#v", v.key, g, want)
						}
					}
					tag, n, d, on := "", 1, time.Second, true
					if set {
						tag, n, d, on = "#hash", 7, 3*time.Second, false
					}
					if ls := got.Strings("ls"); !slices.Equal(ls, []string{tag, fmt.Sprintf("x%dy", n), "${T}"}) {
						t.Errorf("ls: %q", ls)
					}
					if li := got.Raw("li"); !reflect.DeepEqual(li, []any{n, max(n, 2)}) {
						t.Errorf("li: %#v", li)
					}
					wantMs := map[string]any{"a": "t", "b": ""}
					if set {
						wantMs = map[string]any{"a": "#hash", "b": "text, with a comma"}
					}
					if ms := got.Map("ms"); !reflect.DeepEqual(ms, wantMs) {
						t.Errorf("ms: %#v, want %#v", ms, wantMs)
					}
					if md := got.Map("md"); md["a"] != d {
						t.Errorf("md: %#v", md)
					}
					if o := got.Object("o"); !o.Has("on") || o.Bool("on") != on {
						t.Errorf("o: %#v", o.Values)
					}
					if p := builtConf("out").String("path"); p != "out.txt" {
						t.Errorf("path %q", p)
					}
				})
			}
		}
	}
}

// The example of the README, in flow style, and a quoted number filled by
// a variable.
func TestFlowStyleReferenceOfTheREADME(t *testing.T) {
	for _, text := range []string{
		"sources:\n  gen: {type: test_gen, count: ${N:-3}}\nsinks:\n  out: {type: test_sink, inputs: [gen], path: p}\n",
		"sources:\n  gen: {type: test_gen, count: \"${N:-3}\"}\nsinks:\n  out: {type: test_sink, inputs: [gen], path: p}\n",
		"sources: {gen: {type: test_gen, count: ${N:-3}}}\nsinks: {out: {type: test_sink, inputs: [gen], path: p}}\n",
	} {
		for _, environ := range [][]string{nil, {"N=5"}} {
			resetFakes()
			c, err := Compile(writeFile(t, text), Options{Environ: environ}, nil)
			if err != nil {
				t.Fatalf("%q %v: %v", text, environ, err)
			}
			c.Close()
			want := 3
			if environ != nil {
				want = 5
			}
			if got := builtConf("gen").Int("count"); got != want {
				t.Errorf("%q %v: count %d, want %d", text, environ, got, want)
			}
		}
	}
}

// col is the column (in characters, from 1) at which the n-th occurrence
// (from 1) of sub starts on line.
func col(line, sub string, n int) int {
	at := 0
	for ; n > 0; n-- {
		i := strings.Index(line[at:], sub)
		if i < 0 {
			panic(sub + " not on " + line)
		}
		at += i + len(sub)
	}
	return utf8.RuneCountInString(line[:at-len(sub)]) + 1
}

func TestErrorsInsideFlowStyleArePointedAt(t *testing.T) {
	line := `  t: {type: test_typed, s: "é€ü", i: ${I:-x}, ls: [a, ${NOPE}], li: [1, ${I:-y}], ms: {k: ${S:-${M}}}, d: ${D:-soon}, b: "${B:-maybe}"}`
	text := "sources:\n" + line + "\nsinks:\n  out: {type: test_sink, inputs: [t], path: p}\n"
	path := writeFile(t, text)
	_, err := Compile(path, Options{}, nil)
	at := func(sub string, n int) string { return fmt.Sprintf("%s:2:%d: ", path, col(line, sub, n)) }
	want := []string{
		at("${I:-x}", 1) + `sources.t.i: want an integer, got string "x"`,
		at("${NOPE}", 1) + `environment variable NOPE is not set (write ${NOPE:-default} to give a default)`,
		at("${I:-y}", 1) + `sources.t.li.1: want an integer, got string "y"`,
		at("${M}", 1) + `environment variable M is not set (write ${M:-default} to give a default)`,
		at("${D:-soon}", 1) + `sources.t.d: want a duration such as 250ms, 5s or 1m30s; got "soon"`,
		at(`"${B:-maybe}"`, 1) + `sources.t.b: want true or false, got string "maybe"`,
	}
	slices.SortFunc(want, func(a, b string) int { return strings.Compare(a, b) })
	got := lines(err)
	slices.SortFunc(got, func(a, b string) int { return strings.Compare(a, b) })
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A reference in block style is where it was; in a flow sequence of
// several lines, each on its own line.
func TestErrorsInMultiLineFlowStyle(t *testing.T) {
	text := "sources:\n  t: {type: test_typed,\n      li: [1,\n        ${I:-z}],\n      s: ${UNSET}}\nsinks:\n  out: {type: test_sink, inputs: [t], path: p}\n"
	path := writeFile(t, text)
	_, err := Compile(path, Options{}, nil)
	want := []string{
		path + `:4:9: sources.t.li.1: want an integer, got string "z"`,
		path + `:5:10: environment variable UNSET is not set (write ${UNSET:-default} to give a default)`,
	}
	if got := lines(err); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Where masking cannot be read back (a "reference" spanning two quoted
// scalars), the file is read as written, as it always was.
func TestReferenceAcrossQuotesIsReadAsWritten(t *testing.T) {
	line := `  t: {type: test_typed, ls: ["${", "}"]}`
	path := writeFile(t, "sources:\n"+line+"\nsinks:\n  out: {type: test_sink, inputs: [t], path: p}\n")
	_, err := Compile(path, Options{}, nil)
	want := fmt.Sprintf(`%s:2:%d: unterminated "${": close it with "}", or write "$${" for a literal "${"`, path, col(line, `"${"`, 1))
	if got := lines(err); !slices.Equal(got, []string{want}) {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	// And a scalar quoted in a way only the reference's text explains.
	resetFakes()
	c, err := Compile(writeFile(t, `
sources:
  t: {type: test_typed, s: "${S:-say \"hi\"}", ls: ['${S:-it''s}', "\u00e9${S:-\u00e9}"]}
sinks:
  out: {type: test_sink, inputs: [t], path: p}
`), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if s, ls := builtConf("t").String("s"), builtConf("t").Strings("ls"); s != `say "hi"` || !slices.Equal(ls, []string{"it's", "éé"}) {
		t.Errorf("s %q ls %q", s, ls)
	}
}

// A syntax error is reported where the file breaks, not at a reference
// that only reads as broken to YAML.
func TestSyntaxErrorBesideAFlowStyleReference(t *testing.T) {
	text := "sources:\n  g: {type: test_gen, count: ${N:-3}}\n  h: {type: test_gen\nsinks:\n  out: {type: test_sink, inputs: [g], path: p}\n"
	path := writeFile(t, text)
	_, err := Compile(path, Options{}, nil)
	got := lines(err)
	if len(got) != 1 || strings.HasPrefix(got[0], path+":2:") || !strings.Contains(got[0], "invalid YAML") {
		t.Errorf("got\n%v\nwant one syntax error after line 2", err)
	}
}

// Text holding characters of the masks' plane is read unmasked: block
// style still works, as before.
func TestFileWithPlane16TextIsReadUnmasked(t *testing.T) {
	resetFakes()
	c, err := Compile(writeFile(t, "sources:\n  t:\n    type: test_typed\n    s: \"\U00100001\"\n    i: ${I:-4}\nsinks:\n  out: {type: test_sink, inputs: [t], path: p}\n"), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := builtConf("t"); got.Int("i") != 4 || got.String("s") != "\U00100001" {
		t.Errorf("values %#v", got.Values)
	}
}
