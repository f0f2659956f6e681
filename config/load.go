// Package config compiles a pipeline YAML file into a flow.Pipeline: one
// call to Compile reads the file, layers the overrides, checks every value
// against the registry's field declarations, builds the nodes and checks
// the graph, reporting every problem at once.
//
// A pipeline file has a name, settings, and sources, stages and sinks, each
// a mapping from node id to node:
//
//	name: evens
//	settings: {buffer: 512}
//	sources:
//	  numbers: {type: generate, count: 100}
//	stages:
//	  even: {type: filter, inputs: [numbers], expr: "value % 2 == 0"}
//	sinks:
//	  out: {type: stdout, inputs: [even]}
//
// Scalars may use ${VAR} and ${VAR:-default} (defaults nest:
// ${A:-${B:-x}}); $${ is a literal ${. A reference stands wherever a
// value can, in block or flow style, quoted or not ({count: ${N:-3}});
// its text is part of the scalar, whatever YAML would make of "{", "," or
// "#" in it. A variable's value is text, put in after the file is parsed:
// it cannot change the file's structure or turn a value into null, and a
// field that wants a number, a boolean, a duration or a size reads the
// text as one.
// Environment variables SLUICE_NAME, SLUICE_SETTINGS__*, SLUICE_SOURCES__*,
// SLUICE_STAGES__* and SLUICE_SINKS__* override the file ("__" nests:
// SLUICE_STAGES__EVEN__EXPR sets stages.even.expr), and --set flags
// override both. Every problem is reported at once, each as
// file:line:col: message (or the variable or flag it came from).
package config

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// MaxFileSize bounds a pipeline file: a config is kilobytes, and reading
// an unbounded file (a log passed by mistake, /dev/zero) would not end.
const MaxFileSize = 10 << 20

// Node is one source, stage or sink as configured.
type Node struct {
	ID     string
	Kind   flow.Kind
	Type   string
	Inputs []string
	// Values are the node's keys as written, after overrides, before type
	// checks and defaults.
	Values map[string]any
	// Config holds the node's keys checked against the declarations of
	// its kind and type, typed, with defaults filled in: what its Spec's
	// Build is given, plus the keys common to its kind (inputs, buffer,
	// on_error, ...). A key whose value was refused is left out, and so
	// is every key of a type that is not registered. Read it through the
	// getters (Config.Strings("topics")).
	Config *registry.Conf
	Pos    Pos

	// checked is the result of the checks behind Config; clean reports
	// that they found no problem, so the node may be built.
	checked *nodeConf
	clean   bool
}

// File is a loaded pipeline file.
type File struct {
	Path string
	Name string
	// Settings holds the settings block, checked, with defaults filled in.
	Settings *registry.Conf
	// Nodes are the sources, then the stages, then the sinks, each in the
	// order the file lists them (nodes only an override creates come
	// last in their section).
	Nodes []Node

	src      *source
	loadErrs Errors // Build refuses a File Load found problems in
	// rawSettings is the settings block as written (after overrides),
	// to tell a key that was set from a default.
	rawSettings map[string]any
	// notMapping are the nodes (by path.key()) written as something other
	// than a mapping: reported once, then checked no further.
	notMapping map[string]bool
}

func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is larger than %d MiB; is it really a pipeline file?", MaxFileSize>>20)
	}
	return data, nil
}

func load(file string, data []byte, opts Options) (*File, error) {
	src := newSource(file)
	if errs := src.parse(data); len(errs) > 0 {
		return nil, errs.err()
	}
	var errs Errors
	src.interpolate(src.root, newEnviron(opts.Environ), &errs)
	values := src.decode(&errs)

	top, isMap := values.(map[string]any)
	if values != nil && !isMap {
		errs.add(src.pos(nil, false), "the top level must be a mapping with name, settings, sources, stages and sinks; got %s", describe(values))
	}
	merged := src.layer(top, opts, &errs)

	f := &File{Path: file, src: src, notMapping: map[string]bool{}}
	c := &checker{src: src, errs: &errs}
	c.file(f, merged)
	c.token(f)
	f.loadErrs = errs
	return f, errs.err()
}

var sections = []struct {
	name string
	kind flow.Kind
}{{"sources", flow.KindSource}, {"stages", flow.KindStage}, {"sinks", flow.KindSink}}

func sectionOf(k flow.Kind) string { return sections[k].name }

var topKeys = []string{"name", "settings", "sources", "stages", "sinks"}

// file checks the merged config and fills in f.
func (c *checker) file(f *File, top map[string]any) {
	for _, k := range sortedKeys(top) {
		if !slices.Contains(topKeys, k) {
			c.errs.add(c.src.pos(path{k}, true), "unknown key %s%s", clip(k), suggest(k, topKeys))
		}
	}

	f.Name = strings.TrimSuffix(filepath.Base(f.Path), filepath.Ext(f.Path))
	if v := top["name"]; v != nil {
		if name, ok := c.value(registry.Field{Name: "name", Type: registry.String}, v, path{"name"}); ok {
			if name == "" {
				c.errs.add(c.src.pos(path{"name"}, false), "name: must not be empty")
			} else {
				f.Name = name.(string)
			}
		}
	}

	settings := c.mapping(top["settings"], path{"settings"}, "")
	f.rawSettings = settings
	f.Settings = &registry.Conf{ID: "settings", Kind: "settings", Values: c.object(registry.SettingsFields, settings, path{"settings"}, true)}

	var all []Node
	for _, sec := range sections {
		p := path{sec.name}
		nodes := c.mapping(top[sec.name], p, fmt.Sprintf("; a %s is written as id: {type: ..., ...}", sec.kind))
		for id, v := range nodes {
			at := p.child(id)
			n := Node{ID: id, Kind: sec.kind, Pos: c.src.pos(at, true)}
			n.Values = c.mapping(v, at, "")
			n.Config = &registry.Conf{ID: id, Kind: sec.kind.String(), Values: map[string]any{}}
			if !validID(id) {
				c.errs.add(n.Pos, "%s: invalid %s id %s: use letters, digits, _ and -", sec.name, sec.kind, clip(id))
			}
			if v != nil && n.Values == nil {
				f.notMapping[at.key()] = true
				all = append(all, n)
				continue
			}
			before := len(*c.errs)
			nc := c.node(sec.kind, at, n.Values)
			n.checked, n.clean = &nc, len(*c.errs) == before
			n.Type = nc.typ
			n.Inputs, _ = nc.values["inputs"].([]string)
			n.Config.Type, n.Config.Values = nc.typ, nc.values
			all = append(all, n)
		}
	}

	// The first of two nodes with one id, in reading order, keeps it.
	slices.SortStableFunc(all, func(a, b Node) int { return cmp.Or(comparePos(a.Pos, b.Pos), cmp.Compare(a.ID, b.ID)) })
	first := map[string]Node{}
	for _, n := range all {
		if n.ID == "" {
			continue // reported as an invalid id
		}
		if prev, dup := first[n.ID]; dup {
			where := prev.Pos.String()
			if prev.Pos.Origin == "" && prev.Pos.Line > 0 {
				where = fmt.Sprintf("line %d", prev.Pos.Line)
			}
			c.errs.add(n.Pos, "%s.%s: duplicate id %q: already the %s at %s", sectionOf(n.Kind), n.ID, n.ID, prev.Kind, where)
			continue
		}
		first[n.ID] = n
		f.Nodes = append(f.Nodes, n)
	}
	slices.SortStableFunc(f.Nodes, func(a, b Node) int { return cmp.Compare(a.Kind, b.Kind) })
}

// token refuses a settings.http.token that is there but guards nothing:
// null or empty (which would read as "no token", serving every endpoint
// to anyone), or text no Authorization header can carry. A value of
// another type is reported by the type check. Leaving the key out is how
// a listener goes without a token.
func (c *checker) token(f *File) {
	http, _ := f.rawSettings["http"].(map[string]any)
	raw, present := http["token"]
	if !present {
		return
	}
	at := path{"settings", "http", "token"}
	const remedy = "set a token, or leave the key out to serve without one"
	if raw == nil {
		c.errs.add(c.src.pos(at, true), "settings.http.token: is null; %s", remedy)
		return
	}
	pos := c.src.pos(at, false)
	h := f.Settings.Object("http")
	if !h.Has("token") {
		return // not a string: reported as such
	}
	tok := h.String("token")
	how := ""
	if text, ok := c.src.written(at); ok {
		how = fmt.Sprintf(" (written as %s)", clip(text))
	}
	switch i := strings.IndexFunc(tok, unicode.IsControl); {
	case tok == "":
		c.errs.add(pos, "settings.http.token: is empty%s; an empty token would turn authentication off: %s", how, remedy)
	case strings.TrimSpace(tok) != tok:
		c.errs.add(pos, "settings.http.token: starts or ends with white space%s, which an Authorization header cannot carry: no request could match it", how)
	case i >= 0:
		r, _ := utf8.DecodeRuneInString(tok[i:])
		c.errs.add(pos, "settings.http.token: contains the control character %U%s, which an Authorization header cannot carry", r, how)
	}
}

func validID(id string) bool {
	if id == "" {
		return false
	}
	for _, r := range id {
		if r != '_' && r != '-' && !(r >= 'a' && r <= 'z') && !(r >= 'A' && r <= 'Z') && !(r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// comparePos orders file positions in reading order, overrides after them.
func comparePos(a, b Pos) int {
	return cmp.Or(
		cmp.Compare(boolInt(a.Origin != ""), boolInt(b.Origin != "")),
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Col, b.Col),
		cmp.Compare(a.Origin, b.Origin),
	)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Pos is where the value at key (dot-separated, as in
// settings.http.listen) came from: its place in the file, or the override
// that set it. A caller checking a value Load could not judge (an address
// it only parses later) reports the problem there.
func (f *File) Pos(key string) Pos {
	if f.src == nil {
		return Pos{File: f.Path}
	}
	return f.src.pos(path(strings.Split(key, ".")), false)
}
