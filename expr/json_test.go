package expr

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// normalize turns encoding/json's UseNumber output into what our decoder
// produces: int for integers that fit, float64 otherwise.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil && !strings.ContainsAny(string(x), ".eE") {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	}
	return v
}

var jsonSeeds = []string{
	"{\"\x8e\":0}",
	"\"\xbd\xbd\"",
	`{"seq":12345}`, ` { "a" : [1, 2.5, -0, 1e3, -1.5E-2, true, false, null, "s"] } `, `"\u00e9\ud83d\ude00\n\"\\\/"`,
	`[]`, `{}`, `0`, `-`, `01`, `1.`, `.5`, `1e`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":1}}`, `"\x"`, `"\u12"`,
	`"a` + "\x01" + `"`, `"\ud800"`, `"\ud800\u0041"`, `nul`, `truex`, `{"a":{"b":{"c":[[[]]]}}}`, `123456789012345678901`,
	`-9223372036854775808`, `9223372036854775807`, `{"dup":1,"dup":2}`, "\t\n\r 7 \n", ``, `  `, `"` + "\xff" + `"`,
	`{"\u0061":1}`,
}

func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeJSON(b)
		valid := json.Valid(b)
		if valid != (err == nil) {
			t.Fatalf("%q: json.Valid %v, our error %v", b, valid, err)
		}
		sc := scanner{b: b}
		merr := sc.members([]string{"a"}, make([]span, 1))
		if _, notObj := merr.(*NotObjectError); notObj {
			merr = nil
		}
		if valid != (merr == nil) {
			t.Fatalf("%q: json.Valid %v, members error %v", b, valid, merr)
		}
		if err != nil {
			return
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var want any
		if err := d.Decode(&want); err != nil {
			t.Fatal(err)
		}
		want = normalize(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, want %#v", b, got, want)
		}
		// The member scanner agrees on validity and on every member.
		if m, ok := want.(map[string]any); ok {
			names := make([]string, 0, len(m))
			for k := range m {
				names = append(names, k)
			}
			if len(names) == 0 {
				return
			}
			spans := make([]span, len(names))
			s := scanner{b: b}
			if err := s.members(names, spans); err != nil {
				t.Fatalf("%q: members: %v", b, err)
			}
			for i, n := range names {
				if mv := parseMember(spans[i].of(b)); !reflect.DeepEqual(mv, got.(map[string]any)[n]) {
					t.Fatalf("%q: member %q = %#v, want %#v", b, n, mv, got.(map[string]any)[n])
				}
			}
		}
	})
}

func TestMembersRejectInvalidJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		b := []byte(s)
		spans := make([]span, 1)
		sc := scanner{b: b}
		err := sc.members([]string{"a"}, spans)
		if _, notObj := err.(*NotObjectError); notObj {
			err = nil
		}
		if valid := json.Valid(b); valid != (err == nil) {
			t.Errorf("%q: json.Valid %v, members error %v", b, valid, err)
		}
	}
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	if _, err := decodeJSON([]byte(deep)); err == nil {
		t.Error("nesting beyond maxDepth: want an error")
	}
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, 0, -7, int64(math.MaxInt64), uint8(200), 1.5, 1e21, 1e-7, 123456.789, float32(0.1), math.Copysign(0, -1),
		"plain", "quote\" back\\ nl\n tab\t ctl\x01 é 😀", map[string]any{"b": 1, "a": []any{"x", nil, 2.5}},
		map[string]string{"z": "1", "y": "2"}, []any{}, map[string]any{}, []int{1, 2},
		time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	for _, v := range values {
		got, err := AppendJSON(nil, v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		want, _ := json.Marshal(v)
		if !bytes.Equal(got, want) {
			t.Errorf("%#v:\n got  %s\n want %s", v, got, want)
		}
	}
	if got, _ := AppendJSON(nil, "bad \xff utf8"); string(got) != `"bad \ufffd utf8"` {
		t.Errorf("invalid UTF-8: got %s", got)
	}
	if got, _ := AppendJSON(nil, 90*time.Second); string(got) != `"1m30s"` {
		t.Errorf("duration: got %s", got)
	}
	if _, err := AppendJSON(nil, math.Inf(1)); err == nil {
		t.Error("Inf: want an error")
	}
}

// plainInt reads what strconv reads, for every length of number, whatever
// follows it, and wherever the value ends.
func TestPlainIntMatchesStrconv(t *testing.T) {
	nums := []string{"1", "9", "10", "42", "-7", "1234567", "12345678", "123456789", "-12345678",
		"999999999999999999", "-999999999999999999", "1000000000000000000", "0", "-0", "01", "-", "1.5", "2e3", "3E1"}
	for k := 1; k <= 18; k++ {
		nums = append(nums, strings.Repeat("9", k), "1"+strings.Repeat("0", k-1), "-"+strings.Repeat("8", k))
	}
	for _, num := range nums {
		for _, after := range []string{"", "}", ",", " ", ":", "/", "a", "\xff", "\xfa9", "}}}}}}}}}}"} {
			for _, before := range []string{"", `{"a":`} {
				b := []byte(before + num + after)
				n, end, ok := plainInt(b, len(before))
				want, err := strconv.ParseInt(num, 10, 64)
				plain := err == nil && num != "-0" && num[0] != '0' && !strings.HasPrefix(num, "-0") &&
					len(strings.TrimPrefix(num, "-")) <= 18 && !strings.HasPrefix(after, ".") &&
					!strings.HasPrefix(after, "e") && !strings.HasPrefix(after, "E")
				if ok != plain {
					t.Fatalf("plainInt(%q) ok = %v, want %v", b, ok, plain)
				}
				if ok && (n != int(want) || end != len(before)+len(num)) {
					t.Fatalf("plainInt(%q) = %d ending at %d, want %d ending at %d", b, n, end, want, len(before)+len(num))
				}
			}
		}
	}
}
