package config

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// builder holds the state of one build: Compile's, or Build's.
type builder struct {
	f        *File
	env      registry.Env
	settings *registry.Conf
	extra    []flow.Option // the host's pipeline options, applied last
	replace  Replacer      // may be nil
	check    *checker
	errs     Errors

	nodes map[string]*builtNode
	built []*builtNode // in f.Nodes order
}

type builtNode struct {
	node   *Node
	at     path
	conf   nodeConf
	policy flow.ErrorPolicy
	// ownPolicy: the node's on_error applies; otherwise settings.on_error.
	ownPolicy bool
	// use is what the node makes of its policy: everything, for a node
	// that could not be built (nothing is refused on its account).
	use    flow.PolicyUse
	closer flow.Closer // the built component, if it needs closing
}

func newBuilder(f *File, env *registry.Env) *builder {
	// Load's problems come first: a File with any is never built into a
	// pipeline, though its graph is still checked.
	b := &builder{f: f, nodes: map[string]*builtNode{}, errs: slices.Clone(f.loadErrs)}
	if env != nil {
		b.env = *env
	}
	if b.env.Context == nil {
		b.env.Context = context.Background()
	}
	if b.env.Logger == nil {
		b.env.Logger = slog.Default()
	}
	// The one place the base directory is worked out: relative paths in
	// the config resolve against the file's directory.
	b.env.BaseDir = filepath.Dir(f.Path)
	if abs, err := filepath.Abs(b.env.BaseDir); err == nil {
		b.env.BaseDir = abs
	}
	src := f.src
	if src == nil { // a File not made by Load: no positions to give
		src = newSource(f.Path)
	}
	b.check = &checker{src: src, errs: &b.errs}
	b.settings = f.Settings
	if b.settings == nil {
		b.settings = &registry.Conf{ID: "settings", Kind: "settings", Values: b.check.object(registry.SettingsFields, nil, path{"settings"}, true)}
	}
	return b
}

// build makes each node (when components is set; else every node is a
// placeholder), wires the pipeline and checks its graph.
func (b *builder) build(components bool) *flow.Pipeline {
	s := b.settings
	defaultPol := policy(s.Object("on_error").Values)
	opts := []flow.Option{flow.WithLogger(b.env.Logger), flow.WithErrorPolicy(defaultPol)}
	if s.Has("buffer") {
		opts = append(opts, flow.WithBuffer(s.Int("buffer")))
	}
	if s.Has("drain_timeout") {
		opts = append(opts, flow.WithDrainTimeout(s.Duration("drain_timeout")))
	}
	p := flow.New(b.f.Name, append(opts, b.extra...)...)

	for i := range b.f.Nodes {
		n := &b.f.Nodes[i]
		if n.ID == "" || b.nodes[n.ID] != nil {
			continue // reported by Load
		}
		bn := &builtNode{node: n, at: path{sectionOf(n.Kind), n.ID}}
		b.nodes[n.ID] = bn
		b.built = append(b.built, bn)

		var comp any
		if !b.f.notMapping[bn.at.key()] {
			if n.checked == nil { // a Node not made by Load
				before := len(b.errs)
				nc := b.check.node(n.Kind, bn.at, n.Values)
				n.checked, n.clean = &nc, len(b.errs) == before
			}
			bn.conf = *n.checked
			if components && bn.conf.known && n.clean {
				comp = b.component(bn)
			}
		}
		bn.policy, bn.ownPolicy = b.nodePolicy(bn, defaultPol)
		bn.use = flow.PolicyUse{Reject: true, Calls: true}
		if comp != nil {
			bn.use = flow.PolicyUseOf(n.Kind, comp)
		}
		b.checkNode(bn)
		b.add(p, bn, comp)
	}
	b.checkSettings()
	b.graphErrors(p.Validate())
	return p
}

// component runs the Spec's Build and checks that it made the right kind
// of thing.
func (b *builder) component(bn *builtNode) any {
	n, spec := bn.node, bn.conf.spec
	conf := &registry.Conf{ID: n.ID, Kind: n.Kind.String(), Type: bn.conf.typ, Values: map[string]any{}, Env: &b.env}
	for _, f := range spec.Fields {
		if v, ok := bn.conf.values[f.Name]; ok {
			conf.Values[f.Name] = v
		}
	}
	var v any
	if b.replace != nil {
		v = b.replace(*n)
	}
	var err error
	if v == nil {
		v, err = safeBuild(spec, conf)
	}
	if cl, ok := v.(flow.Closer); ok && !nilPointer(v) {
		bn.closer = cl
	}
	if err != nil {
		// A Build may report several problems at once (errors.Join), e.g. a
		// plugin refusing several config fields: point at each.
		leaves := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			leaves = j.Unwrap()
		}
		for _, err := range leaves {
			var fe *registry.FieldError
			if errors.As(err, &fe) && fe.Field != "" {
				at := append(bn.at[:len(bn.at):len(bn.at)], strings.Split(fe.Field, ".")...)
				b.errs.add(b.check.pos(at, false), "%s%v", at.prefix(), fe.Err)
			} else {
				b.errs.add(n.Pos, "%s%v", bn.at.prefix(), err)
			}
		}
		return nil
	}
	switch n.Kind {
	case flow.KindSource:
		if s, ok := v.(flow.Source); ok {
			return s
		}
	case flow.KindStage:
		switch s := v.(type) {
		case flow.Stage:
			return s
		case flow.Processor:
			return flow.ProcessorStage(s) // keeps Close if s has one
		}
	case flow.KindSink:
		if s, ok := v.(flow.Sink); ok {
			return s
		}
	}
	b.errs.add(n.Pos, "%s%s type %q built a %T, which is not a flow.%s", bn.at.prefix(), n.Kind, bn.conf.typ, v, kindInterface(n.Kind))
	return nil
}

func kindInterface(k flow.Kind) string {
	switch k {
	case flow.KindSource:
		return "Source"
	case flow.KindStage:
		return "Stage or flow.Processor"
	}
	return "Sink"
}

// nilPointer reports that v is a nil pointer in an interface: what a Build
// failing with `return s, err` hands back, with nothing to close.
func nilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// safeBuild runs a Spec's Build, turning a panic into an error: one broken
// component must not hide the other problems of the file.
func safeBuild(spec registry.Spec, conf *registry.Conf) (v any, err error) {
	if spec.Build == nil {
		return nil, fmt.Errorf("%s type %q has no Build function", conf.Kind, spec.Type)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("building %s type %q panicked: %v", conf.Kind, spec.Type, r)
		}
	}()
	v, err = spec.Build(conf)
	if err == nil && v == nil {
		err = fmt.Errorf("%s type %q built nothing", conf.Kind, spec.Type)
	}
	return v, err
}

// add puts the node into the pipeline, or a placeholder when it could not
// be built, so the graph checks still see it.
func (b *builder) add(p *flow.Pipeline, bn *builtNode, comp any) {
	n, vals := bn.node, &registry.Conf{Values: bn.conf.values}
	opts := []flow.NodeOption{flow.Type(bn.conf.typ)}
	if n.Kind != flow.KindSource {
		inputs := vals.Strings("inputs")
		opts = append(opts, flow.Inputs(inputs...))
		if vals.Has("buffer") {
			opts = append(opts, flow.Buffer(vals.Int("buffer")))
		}
		opts = append(opts, flow.Parallelism(max(vals.Int("parallelism"), 1), flow.Ordering(cmp.Or(vals.String("ordering"), string(flow.OrderPartition)))))
		if bn.ownPolicy && bn.use.Any() {
			// Only what acts on the node: an inherited retry count means
			// nothing to a window, and is no mistake of the node's.
			opts = append(opts, flow.OnError(bn.use.Effective(bn.policy)))
		}
	}
	switch n.Kind {
	case flow.KindSource:
		s, ok := comp.(flow.Source)
		if !ok {
			s = placeholderSource{}
		}
		p.Source(n.ID, s, opts...)
	case flow.KindStage:
		s, ok := comp.(flow.Stage)
		if !ok {
			s = flow.ProcessorStage(placeholder{})
		}
		p.Stage(n.ID, s, opts...)
	default:
		s, ok := comp.(flow.Sink)
		if !ok {
			s = placeholder{}
		}
		p.Sink(n.ID, s, opts...)
	}
}

// placeholder stands in for a node that could not be built; its pipeline
// is never returned, so it never runs. A stage placeholder is a processor,
// which makes use of every error policy setting: an unknown component is
// refused nothing.
type placeholder struct{}

func (placeholder) Write(context.Context, []flow.Record) error { return nil }
func (placeholder) Process(context.Context, []flow.Record, *flow.Output) error {
	return nil
}

type placeholderSource struct{}

func (placeholderSource) Run(context.Context, flow.Emitter) error { return nil }

var (
	_ flow.Source    = placeholderSource{}
	_ flow.Processor = placeholder{}
	_ flow.Sink      = placeholder{}
)

// nodePolicy is settings.on_error overlaid with the keys the node's own
// on_error sets; own reports that the node has an on_error at all. A node
// inheriting a dead-letter policy that names itself (the dead-letter sink)
// fails instead, as it cannot dead-letter into itself.
func (b *builder) nodePolicy(bn *builtNode, defaultPol flow.ErrorPolicy) (pol flow.ErrorPolicy, own bool) {
	if bn.node.Kind == flow.KindSource {
		return defaultPol, false
	}
	pol = defaultPol
	raw, _ := bn.node.Values["on_error"].(map[string]any)
	if raw != nil {
		own = true
		merged := maps.Clone(b.settings.Object("on_error").Values)
		if merged == nil {
			merged = map[string]any{}
		}
		typed, _ := bn.conf.values["on_error"].(map[string]any)
		for k, v := range raw {
			if x, ok := typed[k]; ok && v != nil {
				merged[k] = x
			}
		}
		pol = policy(merged)
	}
	inherited := raw["action"] == nil && raw["dead_letter"] == nil
	if inherited && pol.Action == flow.ActionDeadLetter && pol.DeadLetter == bn.node.ID {
		pol.Action = flow.ActionFail
		own = true
	}
	return pol, own
}

func policy(m map[string]any) flow.ErrorPolicy {
	c := &registry.Conf{Values: m}
	return flow.ErrorPolicy{
		Action:     flow.Action(cmp.Or(c.String("action"), string(flow.ActionFail))),
		Retries:    c.Int("retries"),
		Backoff:    flow.Backoff{Initial: c.Duration("backoff"), Max: c.Duration("max_backoff")},
		Timeout:    c.Duration("timeout"),
		DeadLetter: c.String("dead_letter"),
	}
}

// graphErrors points each flow.GraphError at the YAML that causes it.
func (b *builder) graphErrors(err error) {
	if err == nil {
		return
	}
	var leaves []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		leaves = j.Unwrap()
	} else {
		leaves = []error{err}
	}
	// A node whose inputs could not be read cuts everything downstream off
	// its sources: saying so for each of them would bury the cause.
	inputsUnread := slices.ContainsFunc(b.built, b.inputsUnread)
	seenInput := map[string]int{}
	for _, e := range leaves {
		var ge *flow.GraphError
		if !errors.As(e, &ge) {
			b.errs.add(Pos{File: b.f.Path}, "%v", e)
			continue
		}
		bn := b.nodes[ge.Node]
		if bn == nil {
			b.errs.add(Pos{File: b.f.Path}, "%s", ge.Msg)
			continue
		}
		if ge.Named { // a node that feeds no sink
			if !inputsUnread {
				b.errs.add(bn.node.Pos, "%s", ge.Msg)
			}
			continue
		}
		switch ge.Field {
		case "inputs":
			b.inputError(bn, ge, seenInput)
		case "on_error":
			b.policyError(bn, ge)
		case "":
			if inputsUnread && strings.HasPrefix(ge.Msg, "not reachable") {
				continue
			}
			b.errs.add(bn.node.Pos, "%s%s", bn.at.prefix(), ge.Msg)
		default:
			at := bn.at.child(ge.Field)
			b.errs.add(b.check.pos(at, false), "%s%s", at.prefix(), ge.Msg)
		}
	}
}

// inputsUnread reports that bn's inputs could not be read: a problem
// already reported, which the graph checks would only echo.
func (b *builder) inputsUnread(bn *builtNode) bool {
	if bn.node.Kind == flow.KindSource {
		return false
	}
	_, valid := bn.conf.values["inputs"]
	return b.f.notMapping[bn.at.key()] || bn.node.Values["inputs"] != nil && !valid
}

func (b *builder) inputError(bn *builtNode, ge *flow.GraphError, seen map[string]int) {
	at := bn.at.child("inputs")
	inputs := bn.node.Inputs
	if typed, ok := bn.conf.values["inputs"].([]string); ok {
		inputs = typed
	}
	in := ge.Input
	if in == "" && strings.HasPrefix(ge.Msg, "cycle: ") {
		// "cycle: a -> b -> a" starts at this node; the input closing the
		// cycle is the one before it.
		if ids := strings.Split(strings.TrimPrefix(ge.Msg, "cycle: "), " -> "); len(ids) >= 3 {
			in = ids[len(ids)-2]
		}
	}
	if in == "" {
		given := bn.node.Values["inputs"] != nil
		if b.inputsUnread(bn) || !given && bn.node.Kind == flow.KindStage {
			return // reported as of the wrong type, or as missing
		}
		if !given {
			b.errs.add(bn.node.Pos, "%s%s", bn.at.prefix(), ge.Msg)
			return
		}
		b.errs.add(b.check.pos(at, false), "%s%s", at.prefix(), ge.Msg)
		return
	}
	// Validate checks each listed input in order, and reports a repeat at
	// its second listing; anything else about an input at its first.
	var idx []int
	for i, x := range inputs {
		if x == in {
			idx = append(idx, i)
		}
	}
	key := bn.node.ID + "\x00" + in
	k := seen[key]
	seen[key]++
	up := b.nodes[in]
	if !strings.HasPrefix(ge.Msg, "cycle: ") && up != nil && up.node.Kind != flow.KindSink && in != bn.node.ID {
		k++ // the first listing was fine: this is a repeat
	}
	if k < len(idx) {
		at = at.child(fmt.Sprint(idx[k]))
	}
	b.errs.add(b.check.pos(at, false), "%s%s", bn.at.child("inputs").prefix(), ge.Msg)
}

func (b *builder) policyError(bn *builtNode, ge *flow.GraphError) {
	raw, _ := bn.node.Values["on_error"].(map[string]any)
	var at path
	switch {
	case raw["dead_letter"] != nil:
		at = bn.at.child("on_error").child("dead_letter")
	case raw["action"] != nil:
		at = bn.at.child("on_error").child("action")
	case raw == nil || !bn.ownPolicy:
		// Inherited: one problem of settings.on_error, however many nodes
		// inherit it.
		at = path{"settings", "on_error", "dead_letter"}
		if b.settings.Object("on_error").String("dead_letter") == "" {
			at = path{"settings", "on_error", "action"}
		}
		b.errs.add(b.check.pos(at, false), "settings.on_error: %s", ge.Msg)
		return
	default:
		at = bn.at.child("on_error")
	}
	b.errs.add(b.check.pos(at, false), "%s%s", bn.at.child("on_error").prefix(), ge.Msg)
}

// closeAll closes what was built, sources first as the engine does, within
// the drain timeout.
func (b *builder) closeAll() Errors {
	timeout := b.settings.Duration("drain_timeout")
	if timeout <= 0 {
		timeout = flow.DefaultDrainTimeout
	}
	ctx, cancel := context.WithTimeout(b.env.Context, timeout)
	defer cancel()
	var errs Errors
	order := slices.Clone(b.built)
	slices.SortStableFunc(order, func(x, y *builtNode) int { return int(x.node.Kind) - int(y.node.Kind) })
	for _, bn := range order {
		if bn.closer == nil {
			continue
		}
		if err := safeClose(ctx, bn.closer); err != nil {
			errs.add(bn.node.Pos, "%sclose: %v", bn.at.prefix(), err)
		}
		bn.closer = nil
	}
	return errs
}

func safeClose(ctx context.Context, c flow.Closer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panicked: %v", r)
		}
	}()
	return c.Close(ctx)
}
