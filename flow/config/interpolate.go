package config

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// environ is the process environment as a lookup table.
type environ map[string]string

func newEnviron(kvs []string) environ {
	m := make(environ, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		// The first definition wins, as with os.Getenv.
		if _, seen := m[k]; !seen {
			m[k] = v
		}
	}
	return m
}

// problem is an interpolation error at a byte offset of the scalar.
type problem struct {
	offset int
	msg    string
}

// expand replaces ${NAME} and ${NAME:-default} (default when NAME is unset
// or empty, as in a shell); $${ is a literal ${. Substituted text is not
// scanned again, so a variable can never expand into more references. A
// reference that cannot be resolved is left as written and reported.
func (e environ) expand(s string) (out string, changed bool, problems []problem) {
	if !strings.Contains(s, "${") {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			problems = append(problems, problem{i, `unterminated "${": close it with "}", or write "$${" for a literal "${"`})
			b.WriteString(s[i:])
			break
		}
		ref := s[i : i+3+end]
		name, def, hasDef := strings.Cut(s[i+2:i+2+end], ":-")
		v, set := e[name]
		switch {
		case !validVarName(name):
			problems = append(problems, problem{i, fmt.Sprintf("invalid variable reference %s: want ${NAME} or ${NAME:-default}", clip(ref))})
			b.WriteString(ref)
		case set && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			problems = append(problems, problem{i, fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)})
			b.WriteString(ref)
		}
		i += len(ref)
	}
	return b.String(), true, problems
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r != '_' && !(r >= 'A' && r <= 'Z') && !(r >= 'a' && r <= 'z') && !(i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// clip quotes s for a message, shortened so that binary garbage cannot
// flood the terminal.
func clip(s string) string {
	const limit = 40
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// interpolate expands variables in every scalar value of the tree, in
// place; keys are left alone, as they name config rather than carry data.
// An anchor is expanded once where it is defined, and its aliases see the
// result.
func (s *source) interpolate(n *yaml.Node, env environ, errs *Errors) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			s.interpolate(c, env, errs)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			s.interpolate(n.Content[i], env, errs)
		}
	case yaml.ScalarNode:
		s.interpolateScalar(n, env, errs)
	}
}

func (s *source) interpolateScalar(n *yaml.Node, env environ, errs *Errors) {
	out, changed, problems := env.expand(n.Value)
	if !changed {
		return
	}
	plain := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle|yaml.TaggedStyle) == 0
	for _, p := range problems {
		pos := s.nodePos(n)
		// In a one-line plain scalar the text is the source, so the
		// column of the reference itself is known.
		if plain && !strings.Contains(n.Value, "\n") {
			pos.Col += utf8.RuneCountInString(n.Value[:p.offset])
		}
		errs.add(pos, "%s", p.msg)
	}
	if len(problems) > 0 {
		s.unresolved[n] = true
	}
	s.interpolated[n] = true
	n.Value = out
	if plain {
		// An unquoted ${BUF:-10} reads as the number it expands to, as if
		// it had been written in place; an empty expansion stays an empty
		// string rather than becoming null.
		n.Tag = "!!str"
		if out != "" {
			n.Tag = ""
			n.Tag = n.ShortTag()
		}
	}
}
