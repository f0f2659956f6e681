package expr

import (
	"bytes"
	"testing"

	"github.com/sluicedev/sluice/flow"
)

// The shortcut must never change a result: whenever canonical says yes,
// decoding and encoding again gives the same bytes.
func checkCanonical(t *testing.T, b []byte) {
	t.Helper()
	if !canonical(b) {
		return
	}
	v, err := decodeJSON(b)
	if err != nil {
		t.Fatalf("canonical(%q) but it does not decode: %v", b, err)
	}
	out, err := AppendJSON(nil, v)
	if err != nil || !bytes.Equal(out, b) {
		t.Fatalf("canonical(%q) but it encodes again as %q (%v)", b, out, err)
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]bool{
		`{"a":1,"b":"x","c":[true,false,null],"d":{"e":12.5}}`: true,
		`{"seq":7,"text":"héllo wörld"}`:                       true,
		`[1,2,{"a":[]},{}]`:                                    true,
		`{}`:                                                   true,
		`{"b":1,"a":2}`:                                        false, // order
		`{"a":1,"a":2}`:                                        false, // repeated
		`{"a": 1}`:                                             false, // space
		`{"a":"x\"y"}`:                                         false, // escape
		`{"a":1.0}`:                                            false, // printed 1
		`{"a":1e3}`:                                            false,
		`{"a":-0}`:                                             false,
		`{"a":1234567890123456789}`:                            false,
		`{"a":"\xff"}`:                                         false, // invalid UTF-8
		`"string"`:                                             false, // written unquoted
		`7`:                                                    false,
		`{"a":1}x`:                                             false,
		`{"a":1`:                                               false,
		``:                                                     false,
	} {
		if got := canonical([]byte(in)); got != want {
			t.Errorf("canonical(%q) = %v, want %v", in, got, want)
		}
		checkCanonical(t, []byte(in))
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1.5,"x"]}`, `[{"z":null}]`, `{"a":0.000001}`, `{"a":1e21}`, `{"":""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkCanonical(t, b) })
}

// `value` alone gives the same bytes through the shortcut as through a
// decode, for canonical and other values alike.
func TestValueUnchanged(t *testing.T) {
	p := MustCompile("value")
	for _, v := range []string{`{"a":1,"b":"x"}`, `{"b":1,"a":2}`, `{"a": [1, 2]}`, `[3,2,1]`} {
		env := NewEnv(p)
		env.Bind(&flow.Record{Value: []byte(v)})
		got, _, err := env.AppendBytes(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		decoded, _ := decodeJSON([]byte(v))
		want, _ := AppendJSON(nil, decoded)
		if !bytes.Equal(got, want) {
			t.Errorf("value of %s: got %s, want %s", v, got, want)
		}
		if same := env.Same(p); same != (v == string(want)) {
			t.Errorf("Same for %s = %v, but AppendBytes wrote %s", v, same, got)
		}
	}
}

func TestPlainEnd(t *testing.T) {
	base := []byte("abcdefghijklmnopqrstuvwxyz0123456789")
	for pos := 0; pos < len(base); pos++ {
		for _, c := range []byte{'"', '\\', 0x00, 0x1f, 0x80, 0xff} {
			b := bytes.Clone(base)
			b[pos] = c
			for end := pos + 1; end <= len(b); end++ {
				for from := 0; from <= pos; from++ {
					if got := plainEnd(b[:end], from); got != pos {
						t.Fatalf("plainEnd(%q, %d) = %d, want %d", b[:end], from, got, pos)
					}
				}
			}
		}
	}
	for n := 0; n <= len(base); n++ { // every length, each tail
		for from := 0; from <= n; from++ {
			if got := plainEnd(base[:n], from); got != n {
				t.Fatalf("plainEnd of %d bytes of plain text from %d = %d, want %d", n, from, got, n)
			}
		}
	}
}
