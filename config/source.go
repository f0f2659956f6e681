package config

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// source is the parsed pipeline file with everything needed to point an
// error at the place a value came from: the YAML tree (koanf keeps no
// positions) and the overrides layered on top of it.
type source struct {
	file string
	root *yaml.Node // the document's top node; nil for an empty file
	// interpolated scalars were written with ${...} (the text as written);
	// unresolved ones had an unresolvable reference, already reported.
	interpolated map[*yaml.Node]string
	unresolved   map[*yaml.Node]bool
	overrides    map[string]override // by path.key()
	// keys indexes the keys of large mappings (built when first looked
	// in): errors and checks look values up by path, and scanning a
	// section of n nodes for each of them would take time quadratic in
	// the file's size.
	keys map[*yaml.Node]*keyIndex
}

// override records that an env variable or --set flag set a path.
type override struct {
	origin string
	// text is the override's original text, for a string field given a
	// value YAML reads as another scalar type (--set x.expr=true).
	text    string
	scalar  bool
	created bool // only an ancestor of an overridden path
}

// path names a value: map keys, and list indices in decimal.
type path []string

func (p path) child(k string) path { return append(p[:len(p):len(p)], k) }
func (p path) key() string         { return strings.Join(p, "\x00") }
func (p path) String() string      { return strings.Join(p, ".") }

func newSource(file string) *source {
	return &source{
		file:         file,
		interpolated: map[*yaml.Node]string{},
		unresolved:   map[*yaml.Node]bool{},
		overrides:    map[string]override{},
	}
}

func (s *source) nodePos(n *yaml.Node) Pos {
	return Pos{File: s.file, Line: n.Line, Col: n.Column}
}

// find walks the tree along p, through aliases and merges. It returns the
// nodes at the deepest point reached, and how many elements of p that is:
// the key naming the value (nil for the top and for list items), and the
// value itself as written (an alias is not resolved, so an error about the
// whole value points where it is used).
func (s *source) find(p path) (key, val *yaml.Node, depth int) {
	val = s.root
	for depth < len(p) && val != nil {
		cur := deref(val)
		var k, v *yaml.Node
		switch cur.Kind {
		case yaml.MappingNode:
			k, v = s.lookup(cur, p[depth])
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(p[depth]); err == nil && i >= 0 && i < len(cur.Content) {
				k, v = cur.Content[i], cur.Content[i]
			}
		}
		if v == nil {
			break
		}
		key, val = k, v
		depth++
	}
	return key, val, depth
}

func deref(n *yaml.Node) *yaml.Node {
	for hops := 0; n.Kind == yaml.AliasNode && n.Alias != nil && hops < 8; hops++ {
		n = n.Alias
	}
	return n
}

// keyIndex is where each own key of a mapping is in its Content (the
// first, when repeated), and where its merge keys are.
type keyIndex struct {
	own    map[string]int
	merges []int
}

// indexFrom is the number of keys from which a mapping is indexed.
const indexFrom = 32

// lookup is lookupKey, through an index for a large mapping.
func (s *source) lookup(m *yaml.Node, name string) (key, val *yaml.Node) {
	if len(m.Content) < 2*indexFrom {
		return lookupKey(m, name, 0)
	}
	idx := s.keys[m]
	if idx == nil {
		idx = &keyIndex{own: make(map[string]int, len(m.Content)/2)}
		for i := 0; i+1 < len(m.Content); i += 2 {
			switch k := deref(m.Content[i]); {
			case isMergeKey(m.Content[i]):
				idx.merges = append(idx.merges, i)
			case k.Kind == yaml.ScalarNode && !isMergeKey(k):
				if _, seen := idx.own[k.Value]; !seen {
					idx.own[k.Value] = i
				}
			}
		}
		if s.keys == nil {
			s.keys = map[*yaml.Node]*keyIndex{}
		}
		s.keys[m] = idx
	}
	if i, ok := idx.own[name]; ok {
		return m.Content[i], m.Content[i+1]
	}
	return lookupMerged(m, idx.merges, name, 0)
}

// lookupKey finds name among m's own keys, then in what m merges in.
func lookupKey(m *yaml.Node, name string, depth int) (key, val *yaml.Node) {
	if depth > 8 {
		return nil, nil
	}
	var merges []int
	for i := 0; i+1 < len(m.Content); i += 2 {
		if isMergeKey(m.Content[i]) {
			merges = append(merges, i)
		} else if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == name && !isMergeKey(k) {
			return m.Content[i], m.Content[i+1]
		}
	}
	return lookupMerged(m, merges, name, depth)
}

// lookupMerged finds name in what m merges in, through its merge keys at
// the given positions of its Content.
func lookupMerged(m *yaml.Node, merges []int, name string, depth int) (key, val *yaml.Node) {
	for _, i := range merges {
		srcs := []*yaml.Node{m.Content[i+1]}
		if v := m.Content[i+1]; v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, src := range srcs {
			if src = deref(src); src.Kind == yaml.MappingNode {
				if k, v := lookupKey(src, name, depth+1); v != nil {
					return k, v
				}
			}
		}
	}
	return nil, nil
}

// pos is where the value at p came from; wantKey asks for its key (to
// report an unknown or missing key) rather than its value (a wrong type).
func (s *source) pos(p path, wantKey bool) Pos {
	key, val, depth := s.find(p)
	// The longest overridden prefix of p decides, unless the file has the
	// value at a deeper level (an override that only merged into a mapping
	// the file defines).
	for i := len(p); i > 0; i-- {
		o, ok := s.overrides[p[:i].key()]
		if !ok {
			continue
		}
		if (!o.created && i >= depth) || (o.created && depth < i) {
			return Pos{File: s.file, Origin: o.origin}
		}
		if !o.created {
			break
		}
	}
	switch {
	case val == nil:
		return Pos{File: s.file}
	case depth < len(p) || wantKey && key != nil:
		if key != nil {
			return s.nodePos(key)
		}
	}
	return s.nodePos(val)
}

// text returns the text of the scalar at p when it was written through
// ${...} or an override: YAML typing is for the file's author, who can
// quote; through a variable or flag a string field should take the text
// as given.
func (s *source) text(p path) (string, bool) {
	if o, ok := s.overrides[p.key()]; ok && !o.created {
		return o.text, o.scalar
	}
	if _, val, depth := s.find(p); depth == len(p) && val != nil {
		if _, ok := s.interpolated[deref(val)]; ok {
			return deref(val).Value, true
		}
	}
	return "", false
}

// broken reports that the value at p had a variable reference that could
// not be resolved, so its type is not worth a second error.
func (s *source) broken(p path) bool {
	if o, ok := s.overrides[p.key()]; ok && !o.created {
		return false
	}
	_, val, depth := s.find(p)
	return depth == len(p) && val != nil && s.unresolved[deref(val)]
}
