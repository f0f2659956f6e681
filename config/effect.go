package config

import (
	"fmt"
	"strings"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// A setting that is accepted must act. These checks refuse the common
// node and settings keys that would be ignored where they are written,
// each at its key, saying where it does apply. (A component's own fields
// are its Build's business; the registry test walks them all.)

// checkNode refuses the common keys of bn that would have no effect on it.
func (b *builder) checkNode(bn *builtNode) {
	n := bn.node
	if n.Kind == flow.KindSource || b.f.notMapping[bn.at.key()] {
		return
	}
	vals := bn.conf.values
	common := registry.CommonFields(n.Kind)
	if b.set(n.Values, common, bn.at, "ordering") && intOr(vals["parallelism"], 1) <= 1 {
		at := bn.at.child("ordering")
		b.errs.add(b.check.pos(at, true), "%sordering has no effect with parallelism 1: it says what parallel workers keep in order", bn.at.prefix())
	}
	raw, _ := n.Values["on_error"].(map[string]any)
	at := bn.at.child("on_error")
	if raw == nil {
		return
	}
	what := b.describeNode(bn)
	if !bn.use.Any() {
		b.errs.add(b.check.pos(at, true), "%son_error has no effect on %s: %s", bn.at.prefix(), what, bn.use.Unused(bn.policy, ""))
		return
	}
	for _, f := range flow.PolicyFields {
		if !b.set(raw, registry.OnErrorFields, at, f) {
			continue
		}
		if why := bn.use.Unused(bn.policy, f); why != "" {
			b.errs.add(b.check.pos(at.child(f), true), "%son_error.%s has no effect on %s: %s%s", bn.at.prefix(), f, what, why, b.ownFieldHint(bn, f))
		}
	}
}

// checkSettings refuses settings keys that no node takes up: a default
// every node overrides, or one that acts on none of the nodes inheriting
// it.
func (b *builder) checkSettings() {
	var heirs []*builtNode // stages and sinks
	for _, bn := range b.built {
		if bn.node.Kind != flow.KindSource && !b.f.notMapping[bn.at.key()] {
			heirs = append(heirs, bn)
		}
	}
	if len(heirs) == 0 {
		return // nothing to act on: reported as a graph problem
	}
	raw := b.f.rawSettings
	sets := path{"settings"}
	if b.set(raw, registry.SettingsFields, sets, "buffer") && !anyNode(heirs, func(bn *builtNode) bool { return bn.node.Values["buffer"] == nil }) {
		b.errs.add(b.check.pos(path{"settings", "buffer"}, true), "settings.buffer has no effect: every stage and sink sets its own buffer")
	}

	if http, ok := raw["http"].(map[string]any); ok {
		if h := b.settings.Object("http"); h.Has("listen") && h.String("listen") == "" {
			for _, k := range []string{"token", "pprof"} {
				if b.set(http, fieldsOf(registry.SettingsFields, "http"), sets.child("http"), k) {
					b.errs.add(b.check.pos(path{"settings", "http", k}, true),
						"settings.http.%s has no effect: settings.http.listen is empty, so there is no HTTP listener", k)
				}
			}
		}
	}

	rawPol, _ := raw["on_error"].(map[string]any)
	for _, f := range flow.PolicyFields {
		if !b.set(rawPol, registry.OnErrorFields, sets.child("on_error"), f) {
			continue
		}
		// The reason given is that of the heir making the most of a
		// policy: a sink's "retries are 0" says more than a batch's "it
		// never fails".
		var why string
		whyRank := -1
		inherited := false
		for _, bn := range heirs {
			if own, _ := bn.node.Values["on_error"].(map[string]any); own[f] != nil {
				continue
			}
			inherited = true
			w := bn.use.Unused(bn.policy, f)
			if w == "" {
				why = ""
				break
			}
			if rank := boolInt(bn.use.Reject) + boolInt(bn.use.Calls); rank > whyRank {
				why, whyRank = w, rank
			}
		}
		at := path{"settings", "on_error", f}
		switch {
		case !inherited:
			b.errs.add(b.check.pos(at, true), "settings.on_error.%s has no effect: every stage and sink sets its own on_error.%s", f, f)
		case why != "":
			b.errs.add(b.check.pos(at, true), "settings.on_error.%s has no effect on any stage or sink that inherits it: %s", f, why)
		}
	}
}

// describeNode names bn's type for a message: "a window stage".
func (b *builder) describeNode(bn *builtNode) string {
	what := bn.conf.typ + " " + bn.node.Kind.String()
	if strings.ContainsRune("aeiou", rune(what[0])) {
		return "an " + what
	}
	return "a " + what
}

// ownFieldHint points at a field of the node's own type with the same
// name as the on_error field it set in vain (a plugin's timeout).
func (b *builder) ownFieldHint(bn *builtNode, field string) string {
	for _, f := range bn.conf.spec.Fields {
		if f.Name == field {
			return fmt.Sprintf("; a %s %s has a %s of its own: %s", bn.conf.typ, bn.node.Kind, field, bn.at.child(field))
		}
	}
	return ""
}

// set reports that key, declared among fields, was written (not null)
// in raw, the mapping at at, with a valid value: a bad value is reported
// as such, not as moot.
func (b *builder) set(raw map[string]any, fields []registry.Field, at path, key string) bool {
	if raw[key] == nil {
		return false
	}
	for _, f := range fields {
		if f.Name == key {
			var errs Errors
			_, ok := (&checker{src: b.check.src, errs: &errs}).value(f, raw[key], at.child(key))
			return ok && len(errs) == 0
		}
	}
	return false
}

// fieldsOf returns the fields of the object field name among fields.
func fieldsOf(fields []registry.Field, name string) []registry.Field {
	for _, f := range fields {
		if f.Name == name {
			return f.Fields
		}
	}
	return nil
}

func intOr(v any, def int) int {
	if n, ok := v.(int); ok {
		return n
	}
	return def
}

func anyNode(nodes []*builtNode, pred func(*builtNode) bool) bool {
	for _, bn := range nodes {
		if pred(bn) {
			return true
		}
	}
	return false
}
