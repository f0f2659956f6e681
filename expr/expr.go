// Package expr is the expression language of sluice's stages: map, filter,
// window, dedupe and the Kafka sink's topic all evaluate expressions of
// github.com/expr-lang/expr against one record.
//
// An expression sees these variables:
//
//	value      the record value decoded as JSON (value.seq, value["user"])
//	raw        the value bytes as a string
//	key        the record key as a string
//	headers    map of header name to value (the last one of repeated names)
//	topic      source topic, partition (int), offset (int)
//	timestamp  the record timestamp (time)
//
// JSON integers become int, other numbers float64, so value.seq % 2 works.
//
// Speed: an expression is analysed once at Compile. Only the variables it
// names are filled per record, and when it reads value only through fixed
// members (value.seq, value["x"]) those members are pulled out of the JSON
// by a scanner instead of decoding the whole value. Evaluate through an Env
// kept per goroutine on hot paths; Program.Eval is the convenient form.
package expr

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"

	exprlang "github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/spelling"
)

// Variables lists the names an expression can use, for docs and hints.
var Variables = []string{"value", "raw", "key", "headers", "topic", "partition", "offset", "timestamp"}

// need is a set of per-record variables a program reads.
type need uint16

const (
	needValue   need = 1 << iota // the whole decoded value
	needMembers                  // fixed members of value (value.x)
	needRaw
	needKey
	needHeaders
	needTopic
	needPartition
	needOffset
	needTimestamp

	needAll = needValue | needMembers | needRaw | needKey | needHeaders | needTopic | needPartition | needOffset | needTimestamp
)

var varNeeds = map[string]need{
	"value":     needValue,
	"raw":       needRaw,
	"key":       needKey,
	"headers":   needHeaders,
	"topic":     needTopic,
	"partition": needPartition,
	"offset":    needOffset,
	"timestamp": needTimestamp,
}

// memberVar names the variable a fixed member access value.x is rewritten
// to. Identifiers cannot contain a dot, so it never clashes with a user's.
func memberVar(name string) string { return "value." + name }

// Kind is the result type a caller expects from an expression.
type Kind int

// Kinds for Expect.
const (
	Any Kind = iota
	Bool
	String
	Number
	Time
)

func (k Kind) String() string {
	return [...]string{"any value", "a bool", "a string", "a number", "a time"}[k]
}

func (k Kind) accepts(t reflect.Type) bool {
	if t == nil || t.Kind() == reflect.Interface || k == Any {
		return true // unknown until run time
	}
	switch k {
	case Bool:
		return t.Kind() == reflect.Bool
	case String:
		return t.Kind() == reflect.String || t == reflect.TypeOf([]byte(nil))
	case Number:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			return true
		}
		return false
	case Time:
		return t == reflect.TypeOf(timeZero) || t.Kind() == reflect.String || Number.accepts(t)
	}
	return true
}

type config struct {
	expect Kind
}

// Option configures Compile.
type Option func(*config)

// Expect makes Compile fail when the expression's type is known and is not
// k. When the type is only known at run time, the Eval variants check it.
func Expect(k Kind) Option { return func(c *config) { c.expect = k } }

// Program is a compiled expression. It is immutable and safe for
// concurrent use; per-record state lives in an Env.
type Program struct {
	src     string
	prog    *vm.Program
	needs   need
	members []string // value members read as variables (value.x), sorted
	// object is set when the expression is an object literal with constant
	// keys: AppendJSON then writes it field by field without building a map.
	object []field
	fast   fastFn    // nil when the expression is outside the fast subset
	pool   sync.Pool // *Env for Program.Eval
	// variable names the one variable the expression consists of (e.g.
	// `value`), "" otherwise: a stage can skip evaluating it altogether.
	variable string
}

// field is one key of an object literal.
type field struct {
	key    []byte   // `"name":`
	member string   // the value is exactly value.<member>: its JSON is copied as is
	prog   *Program // otherwise
}

// Compile parses and type-checks src. Unknown variables, syntax and type
// errors are reported here, with the position in src.
func Compile(src string, opts ...Option) (*Program, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty expression")
	}
	p, err := compile(src)
	if err != nil {
		return nil, err
	}
	if t := p.prog.Node().Type(); !c.expect.accepts(t) {
		return nil, fmt.Errorf("expression must return %s, but %q returns %s", c.expect, src, t)
	}
	return p, nil
}

// MustCompile is Compile for expressions fixed in code; it panics on error.
func MustCompile(src string, opts ...Option) *Program {
	p, err := Compile(src, opts...)
	if err != nil {
		panic(err)
	}
	return p
}

func compile(src string) (*Program, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, hint(err)
	}
	var variable string
	if id, ok := tree.Node.(*ast.IdentifierNode); ok {
		variable = id.Value // read before the patcher rewrites the tree
	}
	a := &analysis{}
	prog, err := exprlang.Compile(src, exprlang.Env(envTypes(tree.Node)), exprlang.Patch(a))
	if err != nil {
		return nil, hint(err)
	}
	p := &Program{src: src, prog: prog, needs: a.needs, variable: variable}
	if a.uses > 0 {
		p.needs |= needValue
	}
	for m := range a.members {
		p.members = append(p.members, m)
	}
	slices.Sort(p.members)
	if len(p.members) > 0 {
		p.needs |= needMembers
	}
	fc := fastCompiler{members: p.members}
	p.fast = fc.compile(tree.Node)
	if obj, ok := tree.Node.(*ast.MapNode); ok {
		p.object = objectFields(obj)
		for _, f := range p.object {
			if f.member != "" {
				p.needs |= needMembers
			}
		}
	}
	return p, nil
}

// envTypes declares every variable, plus one per fixed member the patcher
// will rewrite, so unknown names are compile errors and variables load from
// a map[string]any (expr's fastest environment).
func envTypes(root ast.Node) types.Map {
	env := types.Map{
		"value":     types.Any,
		"raw":       types.String,
		"key":       types.String,
		"headers":   types.TypeOf(map[string]string{}),
		"topic":     types.String,
		"partition": types.Int,
		"offset":    types.Int,
		"timestamp": types.TypeOf(timeZero),
	}
	ast.Walk(&root, visitFunc(func(n *ast.Node) {
		if m, ok := fixedMember(*n); ok {
			env[memberVar(m)] = types.Any
		}
	}))
	return env
}

type visitFunc func(*ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }

// fixedMember reports whether n reads a constant member of value.
func fixedMember(n ast.Node) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Method {
		return "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "value" {
		return "", false
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return s.Value, true
}

// analysis is the patcher run by expr.Compile: it rewrites value.x into
// the variable "value.x" and records which variables the program reads.
// (expr refuses `let value = …`, so value always means the record's.)
type analysis struct {
	needs   need
	uses    int // reads of value other than fixed members
	members map[string]bool
}

func (a *analysis) Visit(n *ast.Node) {
	// Walk is post-order: an identifier is seen before the member node
	// holding it, so a `value` that ends up rewritten is first counted as
	// a whole-value use; recount below.
	if m, ok := fixedMember(*n); ok {
		if a.members == nil {
			a.members = map[string]bool{}
		}
		a.members[m] = true
		a.uses--
		ast.Patch(n, &ast.IdentifierNode{Value: memberVar(m)})
		return
	}
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok {
		return
	}
	switch {
	case id.Value == "value":
		a.uses++
	case id.Value == "$env":
		a.needs |= needAll
	default:
		a.needs |= varNeeds[id.Value]
	}
}

// objectFields turns an object literal with distinct constant keys into
// fields compiled one by one; anything else returns nil (evaluate whole).
func objectFields(obj *ast.MapNode) []field {
	seen := map[string]bool{}
	fields := make([]field, 0, len(obj.Pairs))
	for _, pn := range obj.Pairs {
		pair, ok := pn.(*ast.PairNode)
		if !ok {
			return nil
		}
		k, ok := pair.Key.(*ast.StringNode)
		if !ok || seen[k.Value] {
			return nil
		}
		seen[k.Value] = true
		key, _ := AppendJSON(nil, k.Value)
		f := field{key: append(key, ':')}
		if m, ok := fixedMember(pair.Value); ok && !pair.Value.(*ast.MemberNode).Optional {
			f.member = m
		} else {
			sub, err := compile(pair.Value.String())
			if err != nil {
				// The whole literal compiled, so its printed parts must too;
				// if printing lost something, fall back to evaluating whole.
				return nil
			}
			f.prog = sub
		}
		fields = append(fields, f)
	}
	return fields
}

var unknownName = regexp.MustCompile(`^unknown name (\S+)`)

// hint adds "did you mean" to unknown-name errors.
func hint(err error) error {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return err
	}
	if m := unknownName.FindStringSubmatch(fe.Message); m != nil {
		if s := spelling.Nearest(m[1], Variables); s != "" {
			fe.Message += fmt.Sprintf(" (did you mean %s?)", s)
		} else {
			fe.Message += " (variables: " + strings.Join(Variables, ", ") + ")"
		}
	}
	return err
}

// Source is the expression text.
func (p *Program) Source() string { return p.src }

// String is the expression text.
func (p *Program) String() string { return p.src }

// Variable returns the name of the variable the expression is made of
// alone (`value`, `key`, `topic`...), or "" when it computes anything.
func (p *Program) Variable() string { return p.variable }

// ReadsValue reports whether evaluating p needs the record value parsed as
// JSON (and so can fail on a value that is not JSON).
func (p *Program) ReadsValue() bool { return p.needs&(needValue|needMembers) != 0 }

// IsObject reports whether p is an object literal with constant keys, whose
// AppendJSON writes fields directly without building a map.
func (p *Program) IsObject() bool { return p.object != nil }

func (p *Program) env() *Env {
	if e, ok := p.pool.Get().(*Env); ok {
		return e
	}
	return NewEnv(p)
}

func (p *Program) put(e *Env) {
	e.Bind(nil)
	p.pool.Put(e)
}

// Eval evaluates p against r. Hot loops should keep an Env instead.
func (p *Program) Eval(r *flow.Record) (any, error) {
	e := p.env()
	defer p.put(e)
	e.Bind(r)
	return e.Eval(p)
}

// EvalBool evaluates p, which must return a bool.
func (p *Program) EvalBool(r *flow.Record) (bool, error) {
	e := p.env()
	defer p.put(e)
	e.Bind(r)
	return e.EvalBool(p)
}

// EvalString evaluates p to a string (see Env.EvalString).
func (p *Program) EvalString(r *flow.Record) (string, error) {
	e := p.env()
	defer p.put(e)
	e.Bind(r)
	return e.EvalString(p)
}

// EvalFloat evaluates p, which must return a number.
func (p *Program) EvalFloat(r *flow.Record) (float64, error) {
	e := p.env()
	defer p.put(e)
	e.Bind(r)
	return e.EvalFloat(p)
}
