package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Issue 9, part 2: what a variable or an environment override gives is the
// text the user gave. It never turns a value into null (switching a token
// off), never loses a "#..." to a comment, and a field that wants a number,
// a boolean or a duration reads the text as one.

const tokenPipeline = `name: guarded
settings:
  http:
    listen: 127.0.0.1:0
    token: ${TOK}
sources:
  numbers: {type: test_gen}
sinks:
  out: {type: test_sink, inputs: [numbers], path: out.txt}
`

// token loads a pipeline and returns its settings.http.token, and whether
// the key is there at all.
func token(t *testing.T, text string, environ ...string) (string, bool, error) {
	t.Helper()
	f, err := Load(writeFile(t, text), Options{Environ: environ})
	if err != nil {
		return "", false, err
	}
	h := f.Settings.Object("http")
	return h.String("token"), h.Has("token"), nil
}

func TestInterpolatedTokenIsLiteralText(t *testing.T) {
	for _, v := range []string{"null", "NULL", "Null", "~", "abc #def", "true", "123", "0x1F", "[a, b]", "{a: 1}", "*x", "&a b", "- x", "'q'", `"q"`, "a: b"} {
		tok, set, err := token(t, tokenPipeline, "TOK="+v)
		if err != nil || !set || tok != v {
			t.Errorf("TOK=%q: token %q (set %v), error %v; want the text as given", v, tok, set, err)
		}
	}
}

func TestEnvTokenIsLiteralText(t *testing.T) {
	text := strings.Replace(tokenPipeline, "${TOK}", "file-token", 1)
	for _, v := range []string{"abc #def", "null", "~", "NULL", "true", "42", "a: b", "'quoted'"} {
		tok, set, err := token(t, text, "SLUICE_SETTINGS__HTTP__TOKEN="+v)
		if err != nil || !set || tok != v {
			t.Errorf("SLUICE_SETTINGS__HTTP__TOKEN=%q: token %q (set %v), error %v; want the text as given", v, tok, set, err)
		}
	}
}

func TestTokenSetButEmptyIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		token   string // replaces ${TOK}
		environ []string
		want    string // FILE is the path
	}{
		{"empty variable", "${TOK}", []string{"TOK="}, `FILE:5:12: settings.http.token: is empty (written as "${TOK}")`},
		{"empty default", "${TOK:-}", nil, `FILE:5:12: settings.http.token: is empty (written as "${TOK:-}")`},
		{"quoted empty variable", `"${TOK}"`, []string{"TOK="}, `FILE:5:12: settings.http.token: is empty (written as "${TOK}")`},
		{"empty string", `""`, nil, `FILE:5:12: settings.http.token: is empty`},
		{"null", "null", nil, `FILE:5:5: settings.http.token: is null`},
		{"tilde", "~", nil, `FILE:5:5: settings.http.token: is null`},
		{"nothing", "", nil, `FILE:5:5: settings.http.token: is null`},
		{"white space", `"  "`, nil, `FILE:5:12: settings.http.token: starts or ends with white space`},
		{"padded variable", "${TOK}", []string{"TOK= s3cret"}, `FILE:5:12: settings.http.token: starts or ends with white space`},
		{"control character", `"a\tb"`, nil, `FILE:5:12: settings.http.token: contains the control character U+0009`},
		{"number", "123", nil, `FILE:5:12: settings.http.token: want a string, got integer 123 (quote it)`},
		{"list", "[a]", nil, `FILE:5:12: settings.http.token: want a string, got a list`},
		{"empty env", "file-token", []string{"SLUICE_SETTINGS__HTTP__TOKEN="}, `env SLUICE_SETTINGS__HTTP__TOKEN: settings.http.token: is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(tokenPipeline, "${TOK}", tc.token, 1)
			if tc.token == "" {
				text = strings.Replace(text, "token: ", "token:", 1)
			}
			path := writeFile(t, text)
			_, err := Load(path, Options{Environ: tc.environ})
			want := strings.ReplaceAll(tc.want, "FILE", path)
			if !slices.ContainsFunc(lines(err), func(l string) bool { return strings.HasPrefix(l, want) }) {
				t.Errorf("got\n%v\nwant a line starting %s", err, want)
			}
		})
	}
	// --set takes a flow list or mapping as YAML; null is not one of them.
	path := writeFile(t, strings.Replace(tokenPipeline, "${TOK}", "file-token", 1))
	f, err := Load(path, Options{Sets: []string{"settings.http.token=null"}})
	if err != nil || f.Settings.Object("http").String("token") != "null" {
		t.Errorf("--set settings.http.token=null: %v", err)
	}
}

func TestInterpolatedValuesAreTextReadByTheirField(t *testing.T) {
	path := writeFile(t, `
sources:
  numbers:
    type: test_gen
    count: ${COUNT:-10}
    rate: ${RATE}
    tags:
      - ${TAG}
      - "${TAG}"
    labels:
      a: ${TAG}
    tls:
      ca: ${CA}
      verify: ${VERIFY}
    extra: ${EXTRA}
sinks:
  out:
    type: test_sink
    inputs: [numbers]
    path: ${CA}
    flush: ${FLUSH}
    max: ${MAX}
`)
	env := []string{"RATE=1e3", "TAG=null", "CA=~", "VERIFY=false", "EXTRA=12", "FLUSH=250ms", "MAX=1024"}
	resetFakes()
	f, err := Load(path, Options{Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(f, nil); err != nil {
		t.Fatal(err)
	}
	n := builtConf("numbers")
	if n.Int("count") != 10 || n.Float("rate") != 1000 || n.Object("tls").Bool("verify") || !n.Object("tls").Has("verify") {
		t.Errorf("typed fields: %#v", n.Values)
	}
	if !slices.Equal(n.Strings("tags"), []string{"null", "null"}) || n.Map("labels")["a"] != "null" || n.Object("tls").String("ca") != "~" {
		t.Errorf("string fields: %#v", n.Values)
	}
	// A field of any type takes the text: nothing says it wants a number.
	if n.Raw("extra") != "12" {
		t.Errorf("extra %#v, want the string \"12\"", n.Raw("extra"))
	}
	if out := builtConf("out"); out.String("path") != "~" || out.Duration("flush").String() != "250ms" || out.Size("max") != 1024 {
		t.Errorf("out: %#v", out.Values)
	}

	// What is not a number stays text, reported as such at the reference.
	// (The first definition of a variable wins, as with getenv.)
	_, err = Load(path, Options{Environ: append([]string{"COUNT=null", "VERIFY=yes"}, env...)})
	for _, want := range []string{
		path + `:5:12: sources.numbers.count: want an integer, got string "null"`,
		path + `:14:15: sources.numbers.tls.verify: want true or false, got string "yes"`,
	} {
		if !slices.Contains(lines(err), want) {
			t.Errorf("got\n%v\nwant a line %s", err, want)
		}
	}
	// A value written in the file keeps its YAML type: "10" quoted is text.
	_, err = Load(writeFile(t, strings.Replace(pipeline, "{type: test_gen}", `{type: test_gen, count: "10"}`, 1)), Options{})
	if err == nil || !strings.Contains(err.Error(), `sources.numbers.count: want an integer, got string "10"`) {
		t.Errorf("a quoted number in the file: %v", err)
	}
}

func TestOverridesAreLiteralUnlessAListOrMapping(t *testing.T) {
	path := writeFile(t, pipeline)
	f, err := Load(path, Options{
		Environ: []string{
			"SLUICE_SETTINGS__BUFFER=64",
			"SLUICE_SOURCES__NUMBERS__TAGS=[x, null]",
			"SLUICE_SOURCES__NUMBERS__LABELS={a: b}",
			"SLUICE_STAGES__SHOUT__EXPR=value # not a comment",
			"SLUICE_SINKS__OUT__PATH=~",
		},
		Sets: []string{"sources.numbers.count=7", "sources.numbers.rate=null", "sinks.out.flush=2s"},
	})
	if err == nil || !slices.Contains(lines(err), `--set sources.numbers.rate: sources.numbers.rate: want a number, got string "null"`) {
		t.Errorf("--set rate=null: got\n%v", err)
	}
	if f == nil {
		t.Fatal("no File")
	}
	vals := map[string]map[string]any{}
	for _, n := range f.Nodes {
		vals[n.ID] = n.Values
	}
	if f.Settings.Values["buffer"] != 64 || vals["shout"]["expr"] != "value # not a comment" || vals["out"]["path"] != "~" {
		t.Errorf("buffer %#v expr %#v path %#v", f.Settings.Values["buffer"], vals["shout"]["expr"], vals["out"]["path"])
	}
	if tags, _ := vals["numbers"]["tags"].([]any); len(tags) != 2 || vals["numbers"]["count"] != "7" {
		t.Errorf("tags %#v count %#v", vals["numbers"]["tags"], vals["numbers"]["count"])
	}
}

func TestNestedDefaults(t *testing.T) {
	const text = `
sources:
  numbers: {type: test_gen}
stages:
  shout:
    type: test_upper
    inputs: [numbers]
    expr: EXPR
sinks:
  out: {type: test_sink, inputs: [shout], path: out.txt}
`
	expr := func(t *testing.T, e string, environ []string) (any, string, error) {
		path := writeFile(t, strings.Replace(text, "EXPR", e, 1))
		f, err := Load(path, Options{Environ: environ})
		if err != nil {
			return nil, path, err
		}
		return f.Nodes[1].Values["expr"], path, nil
	}
	for _, tc := range []struct {
		expr    string
		environ []string
		want    string
	}{
		{"${A:-${B}}", []string{"B=b"}, "b"},
		{"${A:-${B}}", []string{"A=a", "B=b"}, "a"},
		{"${A:-${B:-x}}", nil, "x"},
		{"${A:-${B:-${C:-deep}}}!", nil, "deep!"},
		{"${A:-pre-${B:-x}-post}", nil, "pre-x-post"},
		{"${A:-$${B}}", nil, "${B}"},
		{"${A:-{x}}", nil, "{x}"},
		{"<${A:-${B}}>", []string{"A=", "B=${C}"}, "<${C}>"}, // a value is never expanded again
		{"${A:-${NOPE}}", []string{"A=set"}, "set"},          // a default not used is not expanded
		{strings.Repeat("${A:-", 8) + "x" + strings.Repeat("}", 8), nil, "x"},
	} {
		got, _, err := expr(t, tc.expr, tc.environ)
		if err != nil || got != tc.want {
			t.Errorf("%s %v: %q, error %v; want %q", tc.expr, tc.environ, got, err, tc.want)
		}
	}

	for _, tc := range []struct{ expr, want string }{
		// A problem inside a default is reported where it is written.
		{"${A:-${B}}", `:8:16: environment variable B is not set`},
		{"x ${A:-${B:-${C}}}", `:8:23: environment variable C is not set`},
		{"${A:-${B}", `:8:11: unterminated "${"`},
		{"${A${B}}", `:8:11: invalid variable reference "${A${B}}"`},
		{strings.Repeat("${A:-", 9) + "x" + strings.Repeat("}", 9), `:8:11: variable references nested more than 8 deep`},
	} {
		_, path, err := expr(t, tc.expr, nil)
		if got := lines(err); len(got) != 1 || !strings.HasPrefix(got[0], path+tc.want) {
			t.Errorf("%s: got\n%v\nwant one line starting %s", tc.expr, err, path+tc.want)
		}
	}
}

func TestSyntaxErrorsHaveAColumn(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"sources:\n  numbers:\n    type: test_gen\n   count: 3\n", ":4:4: invalid YAML: did not find expected key"},
		{"sources:\n  gen: {type: generate\nsinks: [\n", ":2:9: invalid YAML: did not find expected ',' or '}'"},
		{"name: a: b\n", ":1:8: invalid YAML: mapping values are not allowed in this context"},
		{"name: x\nsources:\n  g: {type: test_gen} junk\n", ":3:23: invalid YAML: "},
		{"name: x\nsources:\n\tg: {}\n", ":3:1: invalid YAML: found character that cannot start any token"},
		{"name: x\nsinks:\n  out: {path: @x}\n", ":3:15: invalid YAML: found character that cannot start any token"},
		{"name: \"abc\n", ":1:7: invalid YAML: "},
		{"name: \"a\\qb\"\n", ":1:9: invalid YAML: found unknown escape character"},
		{"name: ok\nsources: {a: [1, 2}\n", ":2:"},
	} {
		path := writeFile(t, tc.text)
		_, err := Load(path, Options{})
		if got := lines(err); len(got) != 1 || !strings.HasPrefix(got[0], path+tc.want) {
			t.Errorf("%q: got\n%v\nwant one line starting %s", tc.text, err, path+tc.want)
		}
		if got := lines(err); len(got) == 1 && !strings.HasPrefix(got[0], path+":") || strings.Count(strings.TrimPrefix(strings.SplitN(got[0], ": ", 2)[0], path), ":") != 2 {
			t.Errorf("%q: %q has no line:col", tc.text, got[0])
		}
	}
}

func TestNonTextFilesArePointedAt(t *testing.T) {
	for _, tc := range []struct {
		data []byte
		want string
	}{
		{[]byte("\x00\xff\xfe garbage \x01"), ":1:1: not a text file: NUL byte at offset 0"},
		{[]byte("name: x\nsources:\n  g: \"a\x00b\"\n"), ":3:8: not a text file: NUL byte at offset 24"},
		{[]byte("name: x\nsources:\n  é: {a: \x07}\n"), ":3:10: invalid YAML: control character U+0007 at offset 27 is not allowed"},
		{[]byte("name: x\n  \xff\xfe\n"), ":2:3: invalid YAML: not UTF-8: byte 0xff at offset 10"},
		{[]byte("\x7fELF\x02\x01\x01\x00\x00\x00"), ":1:8: not a text file: NUL byte at offset 7"},
	} {
		path := writeFile(t, string(tc.data))
		_, err := Load(path, Options{})
		if got := lines(err); len(got) != 1 || got[0] != path+tc.want {
			t.Errorf("%q: got\n%v\nwant %s", tc.data, err, path+tc.want)
		}
	}
}

func TestFilePos(t *testing.T) {
	path := writeFile(t, tokenPipeline)
	f, err := Load(path, Options{Environ: []string{"TOK=x"}, Sets: []string{"sinks.out.path=p"}})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"settings.http.listen": path + ":4:13",
		"settings.http.token":  path + ":5:12",
		"sinks.out.path":       "--set sinks.out.path",
	} {
		if got := f.Pos(key).String(); got != want {
			t.Errorf("Pos(%s) = %s, want %s", key, got, want)
		}
	}
	_ = fmt.Sprint
}
