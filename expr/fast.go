package expr

import (
	"math"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// The fast path. expr's VM boxes every intermediate value in an interface
// and costs ~100 ns per run even for `value.seq % 2 == 0`; most stage
// expressions are that simple. compileFast turns the common subset —
// literals, value.x members, key/raw/topic/partition/offset, arithmetic,
// comparisons, logic, ?: and ?? — into closures over an unboxed val.
//
// The VM stays the reference: whenever the operand types at run time are
// not ones whose result is certain (a string times a number, a non-bool
// condition, a zero divisor, an object member), the closure returns bail
// and the record is evaluated by the VM, which gives the exact result or
// error. TestFastMatchesVM checks the two agree.

type vkind uint8

const (
	kBail vkind = iota // fall back to the VM
	kNil
	kBool
	kInt
	kFloat
	kString
	kOther // a JSON object or array member: only the VM handles it
)

// val is one unboxed value.
type val struct {
	k vkind
	n uint64 // int, float64 bits or bool
	s string
}

var bail = val{k: kBail}

func vInt(i int) val         { return val{k: kInt, n: uint64(i)} }
func vFloat(f float64) val   { return val{k: kFloat, n: math.Float64bits(f)} }
func vString(s string) val   { return val{k: kString, s: s} }
func vBool(b bool) val       { return val{k: kBool, n: b2u(b)} }
func (v val) int() int       { return int(v.n) }
func (v val) float() float64 { return math.Float64frombits(v.n) }
func (v val) bool() bool     { return v.n != 0 }
func (v val) num() float64 {
	if v.k == kInt {
		return float64(v.int())
	}
	return v.float()
}
func (v val) isNum() bool { return v.k == kInt || v.k == kFloat }

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// box converts to what the VM would have returned.
func (v val) box() any {
	switch v.k {
	case kBool:
		return v.bool()
	case kInt:
		return v.int()
	case kFloat:
		return v.float()
	case kString:
		return v.s
	}
	return nil
}

// appendJSON writes v as JSON.
func (v val) appendJSON(dst []byte) ([]byte, error) {
	switch v.k {
	case kBool:
		if v.bool() {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case kInt:
		return appendInt(dst, v.int()), nil
	case kFloat:
		return appendFloat(dst, v.float(), 64)
	case kString:
		return appendString(dst, v.s), nil
	}
	return append(dst, "null"...), nil
}

// appendInt appends n in decimal, as strconv.AppendInt does. Numbers of
// a record are mostly small and non-negative: those are written two
// digits at a time straight into dst's spare capacity.
func appendInt(dst []byte, n int) []byte {
	if n < 0 || n >= 1e16 {
		return strconv.AppendInt(dst, int64(n), 10)
	}
	d := 1
	for x := n; x >= 10; x /= 10 {
		d++
	}
	l := len(dst)
	if cap(dst)-l < d {
		return strconv.AppendInt(dst, int64(n), 10)
	}
	dst = dst[:l+d]
	out := dst[l:]
	i := d
	for n >= 100 {
		q := n / 100
		r := n - q*100
		i -= 2
		out[i], out[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		n = q
	}
	if n >= 10 {
		out[i-2], out[i-1] = digitPairs[2*n], digitPairs[2*n+1]
	} else {
		out[i-1] = byte('0' + n)
	}
	return dst
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// fastFn evaluates against an Env whose running program is the one the
// closure was compiled for (its members are read through Env.member).
type fastFn func(e *Env) val

// fastCompiler builds closures for one program; members indexes the
// program's sorted member list.
type fastCompiler struct {
	members []string
}

func (fc *fastCompiler) member(name string) int {
	for i, m := range fc.members {
		if m == name {
			return i
		}
	}
	return -1
}

// compile returns nil when n is outside the fast subset.
func (fc *fastCompiler) compile(n ast.Node) fastFn {
	switch n := n.(type) {
	case *ast.IntegerNode:
		v := vInt(n.Value)
		return func(*Env) val { return v }
	case *ast.FloatNode:
		v := vFloat(n.Value)
		return func(*Env) val { return v }
	case *ast.StringNode:
		v := vString(n.Value)
		return func(*Env) val { return v }
	case *ast.BoolNode:
		v := vBool(n.Value)
		return func(*Env) val { return v }
	case *ast.NilNode:
		return func(*Env) val { return val{k: kNil} }
	case *ast.MemberNode:
		m, ok := fixedMember(n)
		if !ok {
			return nil
		}
		i := fc.member(m)
		if i < 0 {
			return nil
		}
		return func(e *Env) val { return e.member(i) }
	case *ast.ChainNode:
		// value?.x: the fast member is nil when absent, like the chain.
		if _, ok := fixedMember(n.Node); ok {
			return fc.compile(n.Node)
		}
		return nil
	case *ast.IdentifierNode:
		return metaVar(n.Value)
	case *ast.UnaryNode:
		return fc.unary(n)
	case *ast.BinaryNode:
		return fc.binary(n)
	case *ast.ConditionalNode:
		c, a, b := fc.compile(n.Cond), fc.compile(n.Exp1), fc.compile(n.Exp2)
		if c == nil || a == nil || b == nil {
			return nil
		}
		return func(e *Env) val {
			cv := c(e)
			if cv.k != kBool {
				return bail
			}
			if cv.bool() {
				return a(e)
			}
			return b(e)
		}
	}
	return nil
}

func metaVar(name string) fastFn {
	switch name {
	case "key":
		return func(e *Env) val { return vString(string(e.rec.Key)) }
	case "raw":
		return func(e *Env) val { return vString(string(e.rec.Value)) }
	case "topic":
		return func(e *Env) val { return vString(e.rec.Origin.Topic) }
	case "partition":
		return func(e *Env) val { return vInt(int(e.rec.Origin.Partition)) }
	case "offset":
		return func(e *Env) val { return vInt(int(e.rec.Origin.Offset)) }
	}
	return nil
}

func (fc *fastCompiler) unary(n *ast.UnaryNode) fastFn {
	x := fc.compile(n.Node)
	if x == nil {
		return nil
	}
	switch n.Operator {
	case "!", "not":
		return func(e *Env) val {
			v := x(e)
			if v.k != kBool {
				return bail
			}
			return vBool(!v.bool())
		}
	case "-":
		return func(e *Env) val {
			switch v := x(e); v.k {
			case kInt:
				return vInt(-v.int())
			case kFloat:
				return vFloat(-v.float())
			}
			return bail
		}
	}
	return nil
}

func (fc *fastCompiler) binary(n *ast.BinaryNode) fastFn {
	l, r := fc.compile(n.Left), fc.compile(n.Right)
	if l == nil || r == nil {
		return nil
	}
	if k, ok := n.Right.(*ast.IntegerNode); ok {
		if f := withInt(n.Operator, l, vInt(k.Value)); f != nil {
			return f
		}
	}
	switch n.Operator {
	case "&&", "and":
		return func(e *Env) val {
			a := l(e)
			if a.k != kBool {
				return bail
			}
			if !a.bool() {
				return a
			}
			if b := r(e); b.k == kBool {
				return b
			}
			return bail
		}
	case "||", "or":
		return func(e *Env) val {
			a := l(e)
			if a.k != kBool {
				return bail
			}
			if a.bool() {
				return a
			}
			if b := r(e); b.k == kBool {
				return b
			}
			return bail
		}
	case "??":
		return func(e *Env) val {
			if a := l(e); a.k != kNil {
				return a
			}
			return r(e)
		}
	case "==":
		return func(e *Env) val { return equal(l(e), r(e), false) }
	case "!=":
		return func(e *Env) val { return equal(l(e), r(e), true) }
	case "<", ">", "<=", ">=":
		return compare(n.Operator, l, r)
	case "+", "-", "*":
		return arith(n.Operator[0], l, r)
	case "/":
		return func(e *Env) val {
			a, b := l(e), r(e)
			if !a.isNum() || !b.isNum() {
				return bail
			}
			return vFloat(a.num() / b.num())
		}
	case "%":
		return func(e *Env) val {
			a, b := l(e), r(e)
			if a.k != kInt || b.k != kInt || b.int() == 0 {
				return bail
			}
			return vInt(a.int() % b.int())
		}
	case "contains", "startsWith", "endsWith":
		op := map[string]func(string, string) bool{
			"contains": strings.Contains, "startsWith": strings.HasPrefix, "endsWith": strings.HasSuffix,
		}[n.Operator]
		return func(e *Env) val {
			a, b := l(e), r(e)
			if a.k != kString || b.k != kString {
				return bail
			}
			return vBool(op(a.s, b.s))
		}
	}
	return nil
}

// equal follows runtime.Equal: numbers compare by value across int and
// float, other kinds only equal their own kind.
func equal(a, b val, negate bool) val {
	if a.k == kBail || b.k == kBail || a.k == kOther || b.k == kOther {
		return bail
	}
	var eq bool
	switch {
	case a.isNum() && b.isNum():
		if a.k == kInt && b.k == kInt {
			eq = a.int() == b.int()
		} else {
			eq = a.num() == b.num()
		}
	case a.k != b.k:
		eq = false
	case a.k == kString:
		eq = a.s == b.s
	case a.k == kBool:
		eq = a.bool() == b.bool()
	case a.k == kNil:
		eq = true
	}
	return vBool(eq != negate)
}

func compare(op string, l, r fastFn) fastFn {
	test := func(c int) bool {
		switch op {
		case "<":
			return c < 0
		case ">":
			return c > 0
		case "<=":
			return c <= 0
		}
		return c >= 0
	}
	return func(e *Env) val {
		a, b := l(e), r(e)
		switch {
		case a.k == kInt && b.k == kInt:
			return vBool(test(cmpInt(a.int(), b.int())))
		case a.isNum() && b.isNum():
			x, y := a.num(), b.num()
			if math.IsNaN(x) || math.IsNaN(y) {
				return bail
			}
			return vBool(test(cmpFloat(x, y)))
		case a.k == kString && b.k == kString:
			return vBool(test(strings.Compare(a.s, b.s)))
		}
		return bail
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// withInt is the closure of `l op c` for an integer constant c, when op
// is one whose closure gains from not calling a closure for c (as in
// `value.seq % 2 == 0`); nil otherwise. It gives what the general closure
// gives.
func withInt(op string, l fastFn, c val) fastFn {
	switch op {
	case "==":
		return func(e *Env) val { return equal(l(e), c, false) }
	case "!=":
		return func(e *Env) val { return equal(l(e), c, true) }
	case "%":
		d := c.int()
		if d == 0 {
			return nil
		}
		return func(e *Env) val {
			a := l(e)
			if a.k != kInt {
				return bail
			}
			return vInt(a.int() % d)
		}
	case "+", "-", "*":
		o := op[0]
		return func(e *Env) val { return arithVals(o, l(e), c) }
	}
	return nil
}

func arith(op byte, l, r fastFn) fastFn {
	return func(e *Env) val { return arithVals(op, l(e), r(e)) }
}

func arithVals(op byte, a, b val) val {
	switch {
	case a.k == kInt && b.k == kInt:
		x, y := a.int(), b.int()
		switch op {
		case '+':
			return vInt(x + y)
		case '-':
			return vInt(x - y)
		default:
			return vInt(x * y)
		}
	case a.isNum() && b.isNum():
		x, y := a.num(), b.num()
		switch op {
		case '+':
			return vFloat(x + y)
		case '-':
			return vFloat(x - y)
		default:
			return vFloat(x * y)
		}
	case op == '+' && a.k == kString && b.k == kString:
		return vString(a.s + b.s)
	}
	return bail
}

// parseVal reads a member's raw JSON into a val without boxing.
func parseVal(raw []byte, buf *[]byte) val {
	if raw == nil {
		return val{k: kNil}
	}
	switch c := raw[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		if len(raw) <= 18 {
			n, neg, j := 0, c == '-', 0
			if neg {
				j = 1
			}
			for ; j < len(raw); j++ {
				d := raw[j]
				if d < '0' || d > '9' {
					break
				}
				n = n*10 + int(d-'0')
			}
			if j == len(raw) {
				if neg {
					n = -n
				}
				return vInt(n)
			}
		}
		integer := true
		for _, d := range raw {
			if d == '.' || d == 'e' || d == 'E' {
				integer = false
				break
			}
		}
		switch x := numberValue(raw, integer).(type) {
		case int:
			return vInt(x)
		case float64:
			return vFloat(x)
		}
	case c == '"':
		return vString(jsonString(raw, buf))
	case c == 't':
		return vBool(true)
	case c == 'f':
		return vBool(false)
	case c == 'n':
		return val{k: kNil}
	}
	return val{k: kOther}
}
