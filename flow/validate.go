package flow

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// GraphError is one problem with the shape of the graph. Field is "inputs",
// "on_error" or "" so a config loader can point at the right YAML node.
type GraphError struct {
	Node  string
	Field string
	Input string // the offending input id, for Field "inputs"
	Msg   string
	// Named: Msg names the node itself ("stage g feeds no sink: ..."), so
	// it is not to be prefixed with the node's id.
	Named bool
}

func (e *GraphError) Error() string {
	if e.Node == "" || e.Named {
		return e.Msg
	}
	return fmt.Sprintf("%s: %s", e.Node, e.Msg)
}

// Validate reports every problem with the graph at once (errors.Join of
// *GraphError).
func (p *Pipeline) Validate() error {
	errs := slices.Clone(p.errs)
	bad := func(n *node, field, input, format string, args ...any) {
		errs = append(errs, &GraphError{Node: n.id, Field: field, Input: input, Msg: fmt.Sprintf(format, args...)})
	}
	if len(p.nodes) == 0 {
		errs = append(errs, &GraphError{Msg: "pipeline has no nodes"})
	}
	hasSource, dangling := false, false
	dlqTargets := p.deadLetterTargets()
	hint := p.suggester()
	for _, n := range p.nodes {
		if n.kind == KindSource {
			hasSource = true
			if len(n.inputs) > 0 {
				bad(n, "inputs", "", "a source takes no inputs")
			}
			continue
		}
		if len(n.inputs) == 0 && !(n.kind == KindSink && dlqTargets[n.id]) {
			bad(n, "inputs", "", "a %s needs at least one input", n.kind)
		}
		seen := map[string]bool{}
		for _, in := range n.inputs {
			if seen[in] {
				bad(n, "inputs", in, "input %q listed twice", in)
				continue
			}
			seen[in] = true
			up, ok := p.byID[in]
			switch {
			case !ok:
				bad(n, "inputs", in, "input %q does not exist%s", in, hint(in))
				dangling = true
			case up.kind == KindSink:
				bad(n, "inputs", in, "input %q is a sink; sinks have no output", in)
			case in == n.id:
				bad(n, "inputs", in, "node lists itself as input")
			}
		}
		pol := p.policyOf(n)
		if pol.Action == ActionDeadLetter {
			dl, ok := p.byID[pol.DeadLetter]
			switch {
			case pol.DeadLetter == "":
				bad(n, "on_error", "", "on_error.action dead_letter needs on_error.dead_letter naming a sink")
			case !ok:
				bad(n, "on_error", "", "dead_letter %q does not exist%s", pol.DeadLetter, hint(pol.DeadLetter))
			case dl.kind != KindSink:
				bad(n, "on_error", "", "dead_letter %q is a %s, not a sink", pol.DeadLetter, dl.kind)
			case dl == n:
				bad(n, "on_error", "", "a sink cannot dead-letter into itself")
			}
		}
		if n.parallelism > MaxParallelism {
			bad(n, "parallelism", "", "parallelism %d is above the maximum %d", n.parallelism, MaxParallelism)
		}
		switch n.ordering {
		case OrderPartition, OrderKey, OrderNone:
		default:
			bad(n, "ordering", "", "unknown ordering %q (want partition, key or none)", n.ordering)
		}
		for _, msg := range p.unusedPolicy(n) {
			bad(n, "on_error", "", "%s", msg)
		}
		if len(n.mws) > 0 && !p.policyUse(n).Calls {
			bad(n, "", "", "middleware (Use) has no effect on it: middleware wraps processors (ProcessorStage) and sinks")
		}
	}
	if len(p.nodes) > 0 && !hasSource {
		errs = append(errs, &GraphError{Msg: "pipeline has no source"})
	}
	cyc := p.findCycle()
	switch {
	case len(p.nodes) > 0 && !slices.ContainsFunc(p.nodes, func(n *node) bool { return n.kind == KindSink }):
		errs = append(errs, &GraphError{Msg: "pipeline has no sink: every record would be acknowledged without being written; " +
			"add one (type discard drops records on purpose)"})
	case cyc == nil && !dangling:
		// With a cycle or an input naming nothing, the graph is not what
		// was meant: dead ends would echo that problem.
		for _, d := range p.deadEnds() {
			errs = append(errs, d)
		}
	}
	if cyc != nil {
		errs = append(errs, &GraphError{Node: cyc[0], Field: "inputs", Msg: "cycle: " + strings.Join(cyc, " -> ")})
	} else {
		reach := p.reachable()
		for _, n := range p.nodes {
			if n.kind != KindSource && !reach[n.id] && (len(n.inputs) > 0 || dlqTargets[n.id]) {
				bad(n, "", "", "not reachable from any source")
			}
		}
	}
	return errors.Join(errs...)
}

// maxHints is how many unknown ids one Validate looks for near misses of.
// Each look compares against every id, so a file full of misspellings
// would otherwise take time quadratic in its size; past the first few, a
// user has a pattern to fix rather than a typo.
const maxHints = 10

// suggester returns a suggest over the pipeline's ids that gives up after
// maxHints words.
func (p *Pipeline) suggester() func(word string) string {
	var ids []string
	asked := 0
	return func(word string) string {
		if asked >= maxHints {
			return ""
		}
		asked++
		if ids == nil {
			ids = make([]string, 0, len(p.nodes))
			for _, n := range p.nodes {
				ids = append(ids, n.id)
			}
		}
		return suggest(word, ids)
	}
}

// findCycle returns a cycle as a path whose last element equals its first.
func (p *Pipeline) findCycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(id string) bool
	visit = func(id string) bool {
		color[id] = grey
		stack = append(stack, id)
		// Walk upstream: inputs are the edges we have.
		for _, in := range p.byID[id].inputs {
			if _, ok := p.byID[in]; !ok {
				continue
			}
			switch color[in] {
			case grey:
				i := slices.Index(stack, in)
				cyc := slices.Clone(stack[i:])
				slices.Reverse(cyc) // print in data-flow direction
				found = append(cyc, cyc[0])
				return true
			case white:
				if visit(in) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
		return false
	}
	for _, n := range p.nodes {
		if color[n.id] == white && visit(n.id) {
			return found
		}
	}
	return nil
}

// deadEnds reports each source and stage from which no path leads to a
// sink: what it emits would be acknowledged (and a Kafka source's offsets
// committed) without being written anywhere. A stage whose outputs all go
// to such nodes is one too. Dead-letter routes do not count: they carry
// only the records that failed, and the rest would still go nowhere.
func (p *Pipeline) deadEnds() []*GraphError {
	live := map[string]bool{}
	var up func(n *node)
	up = func(n *node) {
		if live[n.id] {
			return
		}
		live[n.id] = true
		for _, in := range n.inputs {
			if u, ok := p.byID[in]; ok && u.kind != KindSink {
				up(u)
			}
		}
	}
	down := map[string][]string{}
	type link struct{ from, to string }
	linked := map[link]bool{}
	for _, n := range p.nodes {
		if n.kind == KindSink {
			up(n)
		}
		for _, in := range n.inputs {
			if _, ok := p.byID[in]; ok && !linked[link{in, n.id}] && in != n.id {
				linked[link{in, n.id}] = true
				down[in] = append(down[in], n.id)
			}
		}
	}
	var errs []*GraphError
	for _, n := range p.nodes {
		if live[n.id] || n.kind == KindSink {
			continue
		}
		msg := fmt.Sprintf("%s %s feeds no sink", n.kind, n.id)
		if outs := down[n.id]; len(outs) > 0 {
			verb := "feeds"
			if len(outs) > 1 {
				verb = "feed"
			}
			msg += fmt.Sprintf(" (its output goes only to %s, which %s no sink either)", strings.Join(outs, " and "), verb)
		} else if pol := p.policyOf(n); n.kind != KindSource && pol.Action == ActionDeadLetter && pol.DeadLetter != "" {
			msg += fmt.Sprintf(" (only the records it fails reach %s)", pol.DeadLetter)
		}
		msg += ": its records would be acknowledged without being written"
		if n.kind == KindSource {
			msg += " (a Kafka source would commit their offsets)"
		}
		msg += "; route it to a sink, or to `discard` to drop on purpose"
		errs = append(errs, &GraphError{Node: n.id, Msg: msg, Named: true})
	}
	return errs
}

// deadLetterTargets are the sinks some node dead-letters into; such a sink
// may have no inputs of its own.
func (p *Pipeline) deadLetterTargets() map[string]bool {
	t := map[string]bool{}
	for _, n := range p.nodes {
		if pol := p.policyOf(n); n.kind != KindSource && pol.Action == ActionDeadLetter && pol.DeadLetter != "" {
			t[pol.DeadLetter] = true
		}
	}
	return t
}

func (p *Pipeline) reachable() map[string]bool {
	down := map[string][]string{}
	for _, n := range p.nodes {
		for _, in := range n.inputs {
			down[in] = append(down[in], n.id)
		}
		if pol := p.policyOf(n); n.kind != KindSource && pol.Action == ActionDeadLetter {
			down[n.id] = append(down[n.id], pol.DeadLetter)
		}
	}
	seen := map[string]bool{}
	var walk func(string)
	walk = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		for _, d := range down[id] {
			walk(d)
		}
	}
	for _, n := range p.nodes {
		if n.kind == KindSource {
			walk(n.id)
		}
	}
	return seen
}

// suggest returns ` (did you mean "x"?)` for the closest candidate.
func suggest(word string, candidates []string) string {
	if s := nearest(word, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// maxTypo is the longest word nearest compares: a longer one is no typo
// of a name, and comparing it would cost its length squared per candidate.
const maxTypo = 64

// nearest returns the candidate closest to word by edit distance, or "" if
// none is close enough to be a plausible typo. Its cost is bounded per
// candidate: words and candidates longer than 64 bytes are not compared,
// nor candidates whose length alone puts them too far.
//
// It is internal/spelling.Nearest, which the rest of sluice uses: the
// engine imports only the standard library, so it keeps this copy, and
// spelling_test.go keeps the two alike.
func nearest(word string, candidates []string) string {
	if len(word) > maxTypo {
		return ""
	}
	best, bestD := "", len(word)/2+2
	for _, c := range candidates {
		if len(c) > maxTypo || abs(len(c)-len(word)) >= bestD {
			continue // the distance is at least the difference in length
		}
		if d := editDistance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func abs(n int) int { return max(n, -n) }

// editDistance counts the insertions, deletions and substitutions of
// bytes that turn a into b (Levenshtein).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
