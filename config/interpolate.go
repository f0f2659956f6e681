package config

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/sluicedev/sluice/registry"
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

// maxNesting bounds how deep references nest in defaults:
// ${A:-${B:-x}} is two levels.
const maxNesting = 8

// expand replaces ${NAME} and ${NAME:-default} (default when NAME is unset
// or empty, as in a shell); $${ is a literal ${. A default may hold
// references of its own, expanded only when the default is used. A
// variable's value is not scanned again, so it can never expand into more
// references. A reference that cannot be resolved is left as written and
// reported.
func (e environ) expand(s string) (out string, changed bool, problems []problem) {
	if !strings.Contains(s, "${") {
		return s, false, nil
	}
	var b strings.Builder
	problems = e.expandInto(&b, s, 0, 1)
	return b.String(), true, problems
}

// expandInto writes s, expanded, to b. base is the offset of s in the
// scalar (for problems), level the nesting level of s's references.
func (e environ) expandInto(b *strings.Builder, s string, base, level int) (problems []problem) {
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
		end, inner := closeRef(s, i)
		if end < 0 {
			problems = append(problems, problem{base + i, `unterminated "${": close it with "}", or write "$${" for a literal "${"`})
			b.WriteString(s[i:])
			break
		}
		ref := s[i:end]
		name, def, hasDef := strings.Cut(s[i+2:end-1], ":-")
		v, set := e[name]
		switch {
		case !validVarName(name):
			problems = append(problems, problem{base + i, fmt.Sprintf("invalid variable reference %s: want ${NAME} or ${NAME:-default}", clip(ref))})
			b.WriteString(ref)
		case level+inner > maxNesting:
			problems = append(problems, problem{base + i, fmt.Sprintf("variable references nested more than %d deep", maxNesting)})
			b.WriteString(ref)
		case set && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			problems = append(problems, e.expandInto(b, def, base+i+2+len(name)+2, level+1)...)
		default:
			problems = append(problems, problem{base + i, fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)})
			b.WriteString(ref)
		}
		i = end
	}
	return problems
}

// closeRef finds the "}" that closes the reference starting at s[i:]
// ("${"): a "${" inside opens a nested one, "$${" is text. It returns the
// offset just past that "}" (-1 if there is none), and how many levels of
// references nest inside.
func closeRef(s string, i int) (end, inner int) {
	depth := 0
	for j := i + 2; j < len(s); {
		switch {
		case strings.HasPrefix(s[j:], "$${"):
			j += 3
		case strings.HasPrefix(s[j:], "${"):
			depth++
			inner = max(inner, depth)
			j += 2
		case s[j] == '}' && depth == 0:
			return j + 1, inner
		case s[j] == '}':
			depth--
			j++
		default:
			j++
		}
	}
	return -1, inner
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
	s.interpolated[n] = n.Value
	n.Value = out
	if n.Style&yaml.TaggedStyle == 0 {
		// The result is text, whatever it looks like: a variable can make
		// a value neither null (${TOK} set to "~" must not switch a token
		// off) nor a number or a boolean. A field that wants one reads
		// the text as one (see typed). An explicit tag is the author's.
		n.Tag = "!!str"
	}
}

// typed reads v, the text of a value written with ${...} or given by an
// override, as the scalar type its field wants: `count: ${N:-10}` is the
// integer 10 because count is an integer field, not because the text
// looks like a number. The text reads as it would written in the file
// unquoted (1e3, 0x1F, true). Any other value is returned as it is.
func (s *source) typed(t registry.FieldType, v any, at path) any {
	text, isText := v.(string)
	if !isText || (t != registry.Int && t != registry.Float && t != registry.Bool) {
		return v
	}
	if _, given := s.text(at); !given {
		return v // written in the file: "10" quoted is a string
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: strings.TrimSpace(text)}
	switch tag := n.ShortTag(); {
	case tag == "!!bool" && t == registry.Bool, (tag == "!!int" || tag == "!!float") && t != registry.Bool:
		if x, err := decodeScalar(n); err == nil {
			return x
		}
	}
	return v
}

// written returns the text of the scalar at p as the file has it, when it
// holds a ${...} reference.
func (s *source) written(p path) (string, bool) {
	if o, ok := s.overrides[p.key()]; ok && !o.created {
		return "", false
	}
	_, val, depth := s.find(p)
	if depth != len(p) || val == nil {
		return "", false
	}
	text, ok := s.interpolated[deref(val)]
	return text, ok
}
