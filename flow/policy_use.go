package flow

import (
	"fmt"
	"time"
)

// Which parts of a node's ErrorPolicy act on it depends on what the node
// is. The engine runs processors (ProcessorStage) and sinks through the
// node's middleware chain: Recover, then Retry and Timeout from the
// policy. What still fails goes to the Emitter's Reject, which applies
// Action (and DeadLetter). A Stage of its own gets only the Emitter:
// Retries, Backoff and Timeout never reach it, and a stage that never
// calls Reject (batch, throttle) has no use for a policy at all.
//
// The rules below mirror that wiring (nodeRun.chain wraps only the
// Processor of a ProcessorStage and a sink's writes); validation refuses a
// policy setting that would be ignored, so what a user writes is what
// runs.

// PolicyUse says which parts of its ErrorPolicy act on a node.
type PolicyUse struct {
	// Reject: records the node fails go to Action (and DeadLetter).
	Reject bool
	// Calls: Retries, Backoff and Timeout wrap each processing call or
	// sink write.
	Calls bool
}

// Rejecter is an optional capability of a Stage that is not a
// ProcessorStage: RejectsRecords reports whether it ever hands records to
// Emitter.Reject. A stage that does not implement it is assumed to.
type Rejecter interface {
	RejectsRecords() bool
}

// PolicyUseOf returns what a node of kind k whose component is c (the
// Source, Stage or Sink given to the Pipeline) makes of its ErrorPolicy.
func PolicyUseOf(k Kind, c any) PolicyUse {
	switch k {
	case KindSource:
		return PolicyUse{}
	case KindSink:
		return PolicyUse{Reject: true, Calls: true}
	}
	switch s := c.(type) {
	case processorOf:
		return PolicyUse{Reject: true, Calls: true}
	case Rejecter:
		return PolicyUse{Reject: s.RejectsRecords()}
	}
	return PolicyUse{Reject: true}
}

// PolicyFields are the on_error fields, by their config names, in the
// order they are checked.
var PolicyFields = []string{"action", "retries", "backoff", "max_backoff", "timeout", "dead_letter"}

// Unused says why the on_error field (one of PolicyFields) would have no
// effect on a node using its policy pol as use says, or returns "" when
// it has one. A node with no use for any of its policy (use is zero)
// gets the same answer for every field: check that first with Any.
func (use PolicyUse) Unused(pol ErrorPolicy, field string) string {
	if !use.Any() {
		return "it never fails a record"
	}
	const where = "processor stages (map, filter, ...) and sinks"
	switch field {
	case "action":
		switch {
		case !use.Reject:
			return "it never fails a record"
		case pol.Action != ActionRetry:
		case !use.Calls:
			return "retry is fail here, as retries apply to " + where
		case pol.Retries <= 0:
			return "retry is fail here, as on_error.retries is 0"
		}
	case "dead_letter":
		switch {
		case !use.Reject:
			return "it never fails a record"
		case pol.Action != ActionDeadLetter:
			return fmt.Sprintf("on_error.action is %s, not dead_letter", cmpOr(string(pol.Action), string(ActionFail)))
		}
	case "retries":
		if !use.Calls {
			return "retries apply to " + where
		}
	case "backoff", "max_backoff":
		switch {
		case !use.Calls:
			return "backoff applies to retries, and retries to " + where
		case pol.Retries <= 0:
			return "nothing is retried: on_error.retries is 0"
		}
	case "timeout":
		if !use.Calls {
			return "timeout applies to " + where
		}
	}
	return ""
}

// Any reports whether any part of a policy acts on the node.
func (use PolicyUse) Any() bool { return use.Reject || use.Calls }

// Effective returns pol without the parts that have no effect under use,
// with defaults filled in: two policies behave the same exactly when
// their Effective forms are equal.
func (use PolicyUse) Effective(pol ErrorPolicy) ErrorPolicy {
	var eff ErrorPolicy
	if use.Reject {
		eff.Action = Action(cmpOr(string(pol.Action), string(ActionFail)))
		if eff.Action == ActionRetry {
			eff.Action = ActionFail // retries come from Retries alone
		}
		if eff.Action == ActionDeadLetter {
			eff.DeadLetter = pol.DeadLetter
		}
	}
	if use.Calls {
		eff.Retries = max(pol.Retries, 0)
		eff.Timeout = max(pol.Timeout, 0)
		if eff.Retries > 0 {
			eff.Backoff = pol.Backoff.withDefaults()
		}
	}
	return eff
}

// withDefaults is b with the defaults Delay uses in place of zeros.
func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 10 * time.Second
	}
	return b
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// PolicyUse returns what the node id makes of its ErrorPolicy.
func (p *Pipeline) PolicyUse(id string) PolicyUse {
	n, ok := p.byID[id]
	if !ok {
		return PolicyUse{}
	}
	return p.policyUse(n)
}

func (p *Pipeline) policyUse(n *node) PolicyUse {
	switch n.kind {
	case KindSource:
		return PolicyUseOf(n.kind, n.source)
	case KindStage:
		return PolicyUseOf(n.kind, n.stage)
	}
	return PolicyUseOf(n.kind, n.sink)
}

// unusedPolicy lists, for a node with a policy of its own, each part of it
// that could not act on a node of its kind: Validate refuses them. (The
// config loader also refuses settings that are moot in combination, such
// as a backoff without retries; a Go caller's zero values cannot say
// whether they were meant.)
func (p *Pipeline) unusedPolicy(n *node) []string {
	if n.policy == nil || n.kind == KindSource {
		return nil
	}
	pol := *n.policy
	use := p.policyUse(n)
	what := n.kind.String() + " " + n.id
	if !use.Any() {
		return []string{fmt.Sprintf("on_error has no effect on %s: %s", what, use.Unused(pol, ""))}
	}
	if use.Calls {
		return nil
	}
	set := map[string]bool{
		"retries":     pol.Retries != 0,
		"backoff":     pol.Backoff.Initial != 0,
		"max_backoff": pol.Backoff.Max != 0,
		"timeout":     pol.Timeout != 0,
	}
	var msgs []string
	for _, f := range PolicyFields {
		if set[f] {
			msgs = append(msgs, fmt.Sprintf("on_error.%s has no effect on %s: %s", f, what, use.Unused(pol, f)))
		}
	}
	return msgs
}
