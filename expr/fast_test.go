package expr

import (
	"math"
	"reflect"
	"strconv"
	"testing"
)

// vmOnly is p without its fast path.
func vmOnly(p *Program) *Program {
	return &Program{src: p.src, prog: p.prog, needs: p.needs, members: p.members}
}

var fastExprs = []string{
	`value.a % 2 == 0`, `value.a * 2`, `value.a + value.b`, `value.a - value.b`, `value.a / value.b`,
	`value.a % value.b`, `-value.a`, `!value.a`, `not value.c`, `value.a < value.b`, `value.a >= value.b`,
	`value.a == value.b`, `value.a != value.b`, `value.a == nil`, `value.c && value.d`, `value.c || value.d`,
	`value.c and value.a > 1`, `value.a ?? 7`, `value.c ? value.a : value.b`, `value.s + "x"`, `value.s + value.a`,
	`value.s contains "b"`, `value.s startsWith value.t`, `value.s endsWith "c"`, `value.s < value.t`,
	`key == "k1" && partition == 3`, `offset * 2 + 1`, `topic + raw`, `value?.a`, `value.a * 1.5`, `2 * 3 - 1`,
	`value.a == "1"`, `value.c == true`, `value.o == nil`, `value.o`, `value.a > value.s`, `1 / 0`, `value.a % 0`,
	`value.a == value.a`, `value.f < 1`, `value.big + 1`,
	`value.a != 3`, `value.a - 2`, `value.s + 1`, `value.a % -3`, `value.f % 2`, `value.c == 1`, `value.o == 0`,
}

var fastValues = []string{
	`{"a": 3, "b": 2, "c": true, "d": false, "s": "abc", "t": "ab", "f": 0.5, "o": {"x": 1}, "big": 123456789012345678901}`,
	`{"a": 4.5, "b": 0, "c": false, "d": true, "s": "", "t": "zz", "f": -1e-9, "o": [1]}`,
	`{"a": "1", "b": "2", "c": 1, "d": null, "s": 5, "t": "x", "big": 9223372036854775807}`,
	`{"a": -9223372036854775808, "b": -1, "c": true, "d": true}`,
	`{}`,
}

// TestFastMatchesVM is the fast path's contract: on every input it either
// gives the VM's exact result (value and type) or defers to the VM.
func TestFastMatchesVM(t *testing.T) {
	for _, v := range fastValues {
		checkFastMatchesVM(t, v)
	}
}

func FuzzFastMatchesVM(f *testing.F) {
	for _, v := range fastValues {
		f.Add(v)
	}
	f.Fuzz(checkFastMatchesVM)
}

func checkFastMatchesVM(t *testing.T, v string) {
	for _, src := range fastExprs {
		p, err := Compile(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if p.fast == nil {
			t.Errorf("%s: expected a fast path", src)
			continue
		}
		slow := vmOnly(p)
		{
			r := rec(v)
			fe := NewEnv(p)
			fe.Bind(r)
			fv, ferr := fe.Eval(p)
			se := NewEnv(slow)
			se.Bind(r)
			sv, serr := se.Eval(slow)
			if (ferr == nil) != (serr == nil) || !reflect.DeepEqual(fv, sv) {
				t.Errorf("%s on %s:\n fast %#v (%v)\n vm   %#v (%v)", src, v, fv, ferr, sv, serr)
			}
			if ferr == nil {
				fj, e1 := fe.AppendJSON(nil, p)
				sj, e2 := AppendJSON(nil, sv)
				if string(fj) != string(sj) || (e1 == nil) != (e2 == nil) {
					t.Errorf("%s on %s: JSON fast %s (%v), vm %s (%v)", src, v, fj, e1, sj, e2)
				}
			}
		}
	}
}

func TestFastPathCoverage(t *testing.T) {
	for src, fast := range map[string]bool{
		`value.seq % 2 == 0`:  true,
		`len(value.s) > 1`:    false,
		`value.o.x`:           false,
		`timestamp`:           false,
		`key startsWith "a"`:  true,
		`value.a in [1, 2]`:   false,
		`value.a ?? value.b`:  true,
		`headers.x == "y"`:    false,
		`value["a"] + 1`:      true,
		`value[key]`:          false,
		`value.c ? 1 : "two"`: true,
	} {
		p := MustCompile(src)
		if (p.fast != nil) != fast {
			t.Errorf("%s: fast path %v, want %v", src, p.fast != nil, fast)
		}
	}
}

// appendInt writes what strconv writes, with room in dst and without.
func TestAppendIntMatchesStrconv(t *testing.T) {
	ns := []int{0, 1, 9, 10, 99, 100, 101, 999, 1000, 12345, 24690, 1234567, 99999999, 1e15 - 1, 1e15, 1e16 - 1, 1e16, -1, -10, -1234567, math.MaxInt, math.MinInt}
	for k, p := 0, 1; k < 18; k, p = k+1, p*10 {
		ns = append(ns, p-1, p, p+1, 7*p)
	}
	for _, n := range ns {
		want := strconv.AppendInt([]byte("x"), int64(n), 10)
		for _, room := range []int{0, 1, 5, 30} {
			dst := append(make([]byte, 0, 1+room), 'x')
			if got := appendInt(dst, n); string(got) != string(want) {
				t.Fatalf("appendInt(%d) with room %d = %s, want %s", n, room, got, want)
			}
		}
	}
}
