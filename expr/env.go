package expr

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/sluicedev/sluice/flow"
)

var timeZero time.Time

// Env evaluates programs against one record at a time. It is not safe for
// concurrent use: keep one per goroutine (a sync.Pool in a Processor). It
// reuses its buffers across records, and reads the value at most once per
// record however many programs need it.
type Env struct {
	rec   *flow.Record
	progs []*Program
	slots [][]int // per program in progs: its members' indexes in names
	// per program in progs: for each field of its object literal, where
	// its value comes from
	fieldRefs [][]fieldRef

	// The fast path reads members as vals; the VM reads boxed vars.
	names   []string // members to look up (union over programs)
	idents  []string // memberVar(names[i]), or "" when only copied raw
	spans   []span   // where names[i] is in this record's value
	mvals   []val    // names[i] parsed, when mdone[i] (integers: in spans)
	mdone   []bool
	running int // index in progs of the program whose fast closure runs
	scanned bool
	memErr  error // members of this record could not be read
	sc      scanner

	vars   map[string]any
	vm     vm.VM
	loaded need
	valErr error // value of this record could not be decoded
	canon  int8  // the value is canonical (canonical): 0 not known yet, 1 yes, -1 no
}

// NewEnv returns an Env prepared for progs. Evaluating another program is
// allowed; it is added on first use.
func NewEnv(progs ...*Program) *Env {
	e := &Env{vars: make(map[string]any, 8)}
	for _, p := range progs {
		e.add(p)
	}
	return e
}

func (e *Env) add(p *Program) int {
	slots := make([]int, len(p.members))
	for k, m := range p.members {
		slots[k] = e.addMember(m, true)
	}
	var fields []fieldRef
	if p.object != nil {
		fields = make([]fieldRef, len(p.object))
	}
	pi := len(e.progs)
	e.progs = append(e.progs, p)
	e.slots = append(e.slots, slots)
	e.fieldRefs = append(e.fieldRefs, fields)
	for k, f := range p.object {
		fields[k] = fieldRef{slot: -1, prog: -1}
		if f.member != "" {
			fields[k].slot = e.addMember(f.member, false)
		}
		if f.prog != nil {
			if fields[k].prog = e.find(f.prog); fields[k].prog < 0 {
				fields[k].prog = e.add(f.prog)
			}
		}
	}
	// A record already bound must be read again for the new members.
	e.scanned = false
	e.loaded &^= needMembers
	return pi // not len-1: the fields' programs were added after p
}

// fieldRef says where the value of a field of an object literal comes
// from: the member names[slot] copied as is, or the program progs[prog].
type fieldRef struct{ slot, prog int }

func (e *Env) addMember(name string, asVar bool) int {
	for i, n := range e.names {
		if n == name {
			if asVar && e.idents[i] == "" {
				e.idents[i] = memberVar(name)
			}
			return i
		}
	}
	id := ""
	if asVar {
		id = memberVar(name)
	}
	e.names = append(e.names, name)
	e.idents = append(e.idents, id)
	e.spans = append(e.spans, span{})
	e.mvals = append(e.mvals, val{})
	e.mdone = append(e.mdone, false)
	return len(e.names) - 1
}

func (e *Env) find(p *Program) int {
	for i, q := range e.progs {
		if q == p {
			return i
		}
	}
	return -1
}

func (e *Env) index(p *Program) int {
	if i := e.find(p); i >= 0 {
		return i
	}
	return e.add(p)
}

// Bind makes r the record programs are evaluated against. r must stay
// unchanged until the next Bind; Bind(nil) drops the references.
func (e *Env) Bind(r *flow.Record) {
	e.rec = r
	e.scanned = false
	e.memErr = nil
	clear(e.mdone)
	e.loaded = 0
	e.valErr = nil
	e.canon = 0
	if r == nil {
		clear(e.vars)
		clear(e.mvals)
	}
}

// scan finds the members of the bound record's value.
func (e *Env) scan() error {
	if !e.scanned {
		e.scanned = true
		sc := &e.sc
		sc.b, sc.i, sc.depth = e.rec.Value, 0, 0
		e.memErr = sc.members(e.names, e.spans)
	}
	return e.memErr
}

// mval is names[i] of the bound record as a val, parsed on first use. An
// integer the scan already read is not stored: a val holds a string, and
// writing one to the heap costs a GC write barrier while a GC runs.
func (e *Env) mval(i int) val {
	sp := &e.spans[i]
	if sp.isInt {
		return vInt(sp.n)
	}
	if !e.mdone[i] {
		e.mdone[i] = true
		e.mvals[i] = parseVal(sp.of(e.rec.Value), &e.sc.buf)
	}
	return e.mvals[i]
}

// member is member k of the program being run (fast), in its order.
func (e *Env) member(k int) val { return e.mval(e.slots[e.running][k]) }

// fast runs p's closure; kBail (or kOther) means: ask the VM.
func (e *Env) fast(p *Program, pi int) (val, error) {
	if len(p.members) > 0 {
		if err := e.scan(); err != nil {
			return bail, err
		}
	}
	e.running = pi
	v := p.fast(e)
	if v.k == kOther {
		v = bail
	}
	return v, nil
}

// begin checks a record is bound and runs p's fast path when it has one.
func (e *Env) begin(p *Program) (val, error) {
	pi := e.index(p)
	if e.rec == nil {
		return bail, errors.New("expr: no record bound")
	}
	if p.fast == nil {
		return bail, nil
	}
	return e.fast(p, pi)
}

// run evaluates p on the VM, filling the variables it reads first.
func (e *Env) run(p *Program) (any, error) {
	if missing := p.needs &^ e.loaded; missing != 0 {
		e.load(missing)
	}
	if p.needs&needMembers != 0 && e.memErr != nil {
		return nil, e.memErr
	}
	if p.needs&needValue != 0 && e.valErr != nil {
		return nil, e.valErr
	}
	return e.vm.Run(p.prog, e.vars)
}

func (e *Env) load(n need) {
	r := e.rec
	e.loaded |= n
	if n&needMembers != 0 && len(e.names) > 0 {
		err := e.scan()
		for i, id := range e.idents {
			if id != "" {
				var v any
				if err == nil {
					v = parseMember(e.spans[i].of(r.Value))
				}
				e.vars[id] = v
			}
		}
	}
	if n&needValue != 0 {
		v, err := decodeJSON(r.Value)
		e.vars["value"], e.valErr = v, err
	}
	if n&needRaw != 0 {
		e.vars["raw"] = string(r.Value)
	}
	if n&needKey != 0 {
		e.vars["key"] = string(r.Key)
	}
	if n&needHeaders != 0 {
		h := make(map[string]string, len(r.Headers))
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		e.vars["headers"] = h
	}
	if n&needTopic != 0 {
		e.vars["topic"] = r.Origin.Topic
	}
	if n&needPartition != 0 {
		e.vars["partition"] = int(r.Origin.Partition)
	}
	if n&needOffset != 0 {
		e.vars["offset"] = int(r.Origin.Offset)
	}
	if n&needTimestamp != 0 {
		e.vars["timestamp"] = r.Timestamp
	}
}

// Eval evaluates p against the bound record.
func (e *Env) Eval(p *Program) (any, error) {
	v, err := e.begin(p)
	if err != nil {
		return nil, err
	}
	if v.k != kBail {
		return v.box(), nil
	}
	return e.run(p)
}

// EvalBool evaluates p, which must return a bool.
func (e *Env) EvalBool(p *Program) (bool, error) {
	v, err := e.begin(p)
	if err != nil {
		return false, err
	}
	if v.k == kBool {
		return v.bool(), nil
	}
	var x any
	if v.k != kBail {
		x = v.box()
	} else if x, err = e.run(p); err != nil {
		return false, err
	}
	b, ok := x.(bool)
	if !ok {
		return false, &TypeError{Src: p.src, Want: Bool, Got: x}
	}
	return b, nil
}

// EvalString evaluates p to a string: a string or []byte result as is,
// anything else but nil JSON-encoded (so 42 becomes "42" and [a, b]
// becomes `["a","b"]`, a usable composite key).
func (e *Env) EvalString(p *Program) (string, error) {
	v, err := e.begin(p)
	if err != nil {
		return "", err
	}
	switch v.k {
	case kString:
		return v.s, nil
	case kInt:
		return strconv.Itoa(v.int()), nil
	}
	var x any
	if v.k != kBail {
		x = v.box()
	} else if x, err = e.run(p); err != nil {
		return "", err
	}
	switch x := x.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case nil:
		return "", &TypeError{Src: p.src, Want: String, Got: nil}
	}
	b, err := AppendJSON(nil, x)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// EvalFloat evaluates p, which must return a number.
func (e *Env) EvalFloat(p *Program) (float64, error) {
	v, err := e.begin(p)
	if err != nil {
		return 0, err
	}
	if v.isNum() {
		return v.num(), nil
	}
	var x any
	if v.k != kBail {
		x = v.box()
	} else if x, err = e.run(p); err != nil {
		return 0, err
	}
	if f, ok := toFloat(x); ok {
		return f, nil
	}
	return 0, &TypeError{Src: p.src, Want: Number, Got: x}
}

// EvalTime evaluates p to a time: a time as is, a string in RFC 3339, a
// number as milliseconds since the Unix epoch.
func (e *Env) EvalTime(p *Program) (time.Time, error) {
	v, err := e.Eval(p)
	if err != nil {
		return time.Time{}, err
	}
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", p.src, err)
		}
		return t, nil
	}
	if f, ok := toFloat(v); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return time.UnixMilli(0).Add(time.Duration(f * float64(time.Millisecond))), nil
	}
	return time.Time{}, &TypeError{Src: p.src, Want: Time, Got: v}
}

// AppendJSON evaluates p and appends its result as JSON. An object literal
// with constant keys is written field by field, and a field that is
// exactly value.x is copied from the input without decoding it.
func (e *Env) AppendJSON(dst []byte, p *Program) ([]byte, error) {
	return e.appendJSON(dst, p, e.index(p))
}

// appendJSON is AppendJSON of p, which is progs[pi].
func (e *Env) appendJSON(dst []byte, p *Program, pi int) ([]byte, error) {
	if p.variable == "value" {
		if raw, ok := e.unchanged(p); ok {
			return append(dst, raw...), nil
		}
	}
	if e.rec == nil {
		return dst, errors.New("expr: no record bound")
	}
	if p.object == nil {
		if p.fast != nil {
			v, err := e.fast(p, pi)
			if err != nil {
				return dst, err
			}
			if v.k != kBail {
				return v.appendJSON(dst)
			}
		}
		x, err := e.run(p)
		if err != nil {
			return dst, err
		}
		return AppendJSON(dst, x)
	}
	fields := e.fieldRefs[pi]
	dst = append(dst, '{')
	for i := range p.object {
		f := &p.object[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.key...)
		if f.prog != nil {
			var err error
			if dst, err = e.appendJSON(dst, f.prog, fields[i].prog); err != nil {
				return dst, err
			}
			continue
		}
		if err := e.scan(); err != nil {
			return dst, err
		}
		if raw := e.spans[fields[i].slot].of(e.rec.Value); raw != nil {
			dst = append(dst, raw...)
		} else {
			dst = append(dst, "null"...)
		}
	}
	return append(dst, '}'), nil
}

// unchanged returns the record's value when p is `value` alone and the
// value is JSON in the form encoding it again would produce: the result
// is those bytes, without decoding them.
func (e *Env) unchanged(p *Program) ([]byte, bool) {
	if p.variable != "value" || e.rec == nil {
		return nil, false
	}
	if e.canon == 0 {
		e.canon = -1
		if canonical(e.rec.Value) {
			e.canon = 1
		}
	}
	return e.rec.Value, e.canon > 0
}

// Same reports whether AppendBytes of p would append exactly the bound
// record's value: p is `value` alone and the value is JSON in the form
// the encoder writes. A caller may then keep the value's bytes (they are
// immutable) instead of evaluating p and copying them.
func (e *Env) Same(p *Program) bool {
	_, ok := e.unchanged(p)
	return ok
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int16:
		return float64(x), true
	case int8:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint8:
		return float64(x), true
	case float32:
		return float64(x), true
	}
	return 0, false
}

// TypeError is a result of the wrong type, known only at run time.
type TypeError struct {
	Src  string
	Want Kind
	Got  any
}

func (e *TypeError) Error() string {
	if e.Got == nil {
		return fmt.Sprintf("%s: must return %s, got nil", e.Src, e.Want)
	}
	return fmt.Sprintf("%s: must return %s, got %T %v", e.Src, e.Want, e.Got, e.Got)
}

// AppendBytes evaluates p and appends its result as raw bytes: a string or
// []byte as is, anything else as JSON. ok is false, and nothing is
// appended, when the result is nil. The map stage uses it for values,
// keys and headers.
func (e *Env) AppendBytes(dst []byte, p *Program) (_ []byte, ok bool, err error) {
	if raw, ok := e.unchanged(p); ok {
		return append(dst, raw...), true, nil
	}
	if p.object != nil {
		dst, err = e.AppendJSON(dst, p)
		return dst, err == nil, err
	}
	v, err := e.begin(p)
	if err != nil {
		return dst, false, err
	}
	switch v.k {
	case kString:
		return append(dst, v.s...), true, nil
	case kNil:
		return dst, false, nil
	case kBail:
	default:
		dst, err = v.appendJSON(dst)
		return dst, err == nil, err
	}
	x, err := e.run(p)
	if err != nil {
		return dst, false, err
	}
	switch x := x.(type) {
	case nil:
		return dst, false, nil
	case string:
		return append(dst, x...), true, nil
	case []byte:
		return append(dst, x...), true, nil
	}
	dst, err = AppendJSON(dst, x)
	return dst, err == nil, err
}
