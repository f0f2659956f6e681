package pipelinetest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/spelling"
)

// DefaultTimeout bounds one case when the test file sets no timeout.
const DefaultTimeout = 10 * time.Second

// Suite is a loaded test file.
type Suite struct {
	Path     string // the test file
	Pipeline string // the pipeline file, resolved against Path's directory
	Timeout  time.Duration
	Cases    []*Case
}

// Case is one case of a test file.
type Case struct {
	Name string
	Pos  config.Pos // where the case starts in the test file

	inputs      []sourceInput
	expect      []sinkExpect
	expectError string
	wantError   bool
	unordered   bool

	opts config.Options
	// origins maps the origin config gives an override ("--set KEY",
	// "env NAME") to the test file line that made it.
	origins map[string]config.Pos
}

type sourceInput struct {
	source  string
	pos     config.Pos
	records []flow.Record
}

type sinkExpect struct {
	sink    string
	pos     config.Pos
	records []expected
}

// expected is one record a sink must receive; only the parts given are
// compared.
type expected struct {
	pos      config.Pos
	value    []byte
	hasValue bool
	key      []byte
	hasKey   bool
	headers  []flow.Header
}

var (
	topKeys    = []string{"pipeline", "env", "set", "timeout", "cases"}
	caseKeys   = []string{"name", "set", "inputs", "expect", "expect_error", "unordered"}
	inputKeys  = []string{"value", "key", "headers", "timestamp", "topic", "partition", "offset"}
	expectKeys = []string{"value", "key", "headers"}
)

// Load reads a test file and checks it against the pipeline it names: every
// input must name a source and every expectation a sink. The error is
// config.Errors, every problem as file:line:col: message; problems of the
// pipeline file itself point into that file.
func Load(path string) (*Suite, error) {
	r := &reader{file: path}
	data, err := readFile(path)
	if err != nil {
		return nil, config.Errors{{Pos: config.Pos{File: path}, Msg: err.Error()}}
	}
	root := r.parse(data)
	if root == nil {
		return nil, r.errs
	}
	s := &Suite{Path: path, Timeout: DefaultTimeout}
	var (
		base         setup
		casesNode    *yaml.Node
		pipelineAt   *yaml.Node // the pipeline key's value, when a string
		pipelineSeen bool
	)
	if deref(root).Kind != yaml.MappingNode {
		r.add(root, "the top level must be a mapping with pipeline and cases; got %s", describe(deref(root)))
		return nil, r.errs
	}
	for _, e := range r.mapping(root, "test file", topKeys) {
		switch e.key {
		case "pipeline":
			pipelineSeen = true
			if p, ok := r.str(e.val, "pipeline"); ok {
				if !filepath.IsAbs(p) {
					p = filepath.Join(filepath.Dir(path), p)
				}
				s.Pipeline, pipelineAt = p, e.val
			}
		case "env":
			base.env(r, e.val)
		case "set":
			base.set(r, e.val, "set")
		case "timeout":
			s.Timeout = r.timeout(e.val)
		case "cases":
			casesNode = e.val
		}
	}
	if !pipelineSeen {
		r.add(root, "missing required key \"pipeline\": the pipeline file to test, relative to this file")
	}
	caseNodes := r.sequence(casesNode, "cases")
	switch {
	case casesNode == nil || isNull(deref(casesNode)):
		r.add(root, "missing required key \"cases\": a list of cases, each with name, inputs and expect")
	case deref(casesNode).Kind == yaml.SequenceNode && len(caseNodes) == 0:
		r.add(casesNode, "cases: the list is empty; a test file needs at least one case")
	}
	names := map[string]*yaml.Node{}
	for i, cn := range caseNodes {
		if c := r.readCase(cn, fmt.Sprintf("cases[%d]", i), base, names); c != nil {
			s.Cases = append(s.Cases, c)
		}
	}
	if pipelineAt != nil {
		if _, err := os.Stat(s.Pipeline); err != nil {
			r.add(pipelineAt, "pipeline: %v", err)
		} else {
			s.checkAgainstPipeline(r)
		}
	}
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return s, nil
}

func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, config.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > config.MaxFileSize {
		return nil, fmt.Errorf("file is larger than %d MiB; is it really a test file?", config.MaxFileSize>>20)
	}
	return data, nil
}

func (r *reader) timeout(n *yaml.Node) time.Duration {
	s, ok := r.str(n, "timeout")
	if !ok {
		return DefaultTimeout
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		r.add(n, "timeout: want a positive duration such as 10s or 1m, got %s", describe(deref(n)))
		return DefaultTimeout
	}
	return d
}

// setup is what a case loads its pipeline with: the file's env and set,
// then the case's own set.
type setup struct {
	environ []string
	sets    []string
	origins map[string]config.Pos
}

func (st *setup) clone() setup {
	origins := make(map[string]config.Pos, len(st.origins))
	for k, v := range st.origins {
		origins[k] = v
	}
	return setup{environ: slices.Clone(st.environ), sets: slices.Clone(st.sets), origins: origins}
}

func (st *setup) origin(key string, pos config.Pos) {
	if st.origins == nil {
		st.origins = map[string]config.Pos{}
	}
	st.origins[key] = pos
}

func (st *setup) env(r *reader, n *yaml.Node) {
	for _, e := range r.mapping(n, "env", nil) {
		v := ""
		if !isNull(deref(e.val)) {
			var ok bool
			if v, ok = r.scalar(e.val, "env."+e.key); !ok {
				continue
			}
		}
		if e.key == "" || strings.Contains(e.key, "=") {
			r.add(e.keyAt, "env: %q is not a variable name", e.key)
			continue
		}
		st.environ = append(st.environ, e.key+"="+v)
		st.origin("env "+e.key, r.pos(e.keyAt))
	}
}

// set turns each path: value into a --set flag; the value's YAML text is
// what the flag would carry, a list or mapping as JSON.
func (st *setup) set(r *reader, n *yaml.Node, what string) {
	for _, e := range r.mapping(n, what, nil) {
		v := deref(e.val)
		var text string
		if v.Kind == yaml.ScalarNode {
			text = v.Value
		} else {
			data, err := toJSON(v)
			if err != nil {
				r.add(e.val, "%s.%s: %v", what, e.key, err)
				continue
			}
			text = string(data)
		}
		st.sets = append(st.sets, e.key+"="+text)
		st.origin("--set "+e.key, r.pos(e.keyAt))
		st.origin("--set "+e.key+"="+text, r.pos(e.keyAt))
	}
}

func (r *reader) readCase(n *yaml.Node, what string, base setup, names map[string]*yaml.Node) *Case {
	entries := r.mapping(n, what, caseKeys)
	if deref(n).Kind != yaml.MappingNode {
		return nil
	}
	c := &Case{Pos: r.pos(n)}
	st := base.clone()
	var inputs, expect *yaml.Node
	for _, e := range entries {
		switch e.key {
		case "name":
			if name, ok := r.str(e.val, what+".name"); ok {
				if prev, dup := names[name]; dup {
					r.add(e.val, "%s.name: duplicate case name %q (first at line %d)", what, name, prev.Line)
				}
				names[name] = e.val
				c.Name = name
			}
		case "set":
			st.set(r, e.val, what+".set")
		case "inputs":
			inputs = e.val
		case "expect":
			expect = e.val
		case "expect_error":
			c.expectError, c.wantError = r.str(e.val, what+".expect_error")
			if c.wantError && c.expectError == "" {
				r.add(e.val, "%s.expect_error: give part of the error's text; \"\" would match any error", what)
			}
		case "unordered":
			c.unordered = r.boolean(e.val, what+".unordered")
		}
	}
	if c.Name == "" && !slices.ContainsFunc(entries, func(e entry) bool { return e.key == "name" }) {
		r.add(n, "%s: missing required key \"name\"", what)
	} else if c.Name != "" {
		what = fmt.Sprintf("case %q", c.Name)
	}
	for _, e := range r.mapping(inputs, what+": inputs", nil) {
		in := sourceInput{source: e.key, pos: r.pos(e.keyAt)}
		for i, rn := range r.sequence(e.val, fmt.Sprintf("%s: inputs.%s", what, e.key)) {
			if rec, ok := r.inputRecord(rn, fmt.Sprintf("%s: inputs.%s[%d]", what, e.key, i)); ok {
				rec.Origin.Source = e.key
				if rec.Origin.Offset < 0 {
					rec.Origin.Offset = int64(i)
				}
				in.records = append(in.records, rec)
			}
		}
		c.inputs = append(c.inputs, in)
	}
	for _, e := range r.mapping(expect, what+": expect", nil) {
		ex := sinkExpect{sink: e.key, pos: r.pos(e.keyAt)}
		for i, rn := range r.sequence(e.val, fmt.Sprintf("%s: expect.%s", what, e.key)) {
			if x, ok := r.expectedRecord(rn, fmt.Sprintf("%s: expect.%s[%d]", what, e.key, i)); ok {
				ex.records = append(ex.records, x)
			}
		}
		c.expect = append(c.expect, ex)
	}
	if len(c.expect) == 0 && !c.wantError {
		r.add(n, "%s: nothing to check: give expect (records per sink id) or expect_error", what)
	}
	c.opts = config.Options{Sets: st.sets, Environ: st.environ}
	c.origins = st.origins
	return c
}

func (r *reader) boolean(n *yaml.Node, what string) bool {
	var b bool
	if v := deref(n); v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		r.add(n, "%s: want true or false, got %s", what, describe(v))
	}
	return b
}

func (r *reader) inputRecord(n *yaml.Node, what string) (flow.Record, bool) {
	rec := flow.Record{Origin: flow.Origin{Offset: -1}}
	before := len(r.errs)
	if deref(n).Kind != yaml.MappingNode {
		r.add(n, "%s: want a record such as {value: {...}, key: k}, got %s", what, describe(deref(n)))
		return rec, false
	}
	for _, e := range r.mapping(n, what, inputKeys) {
		at := what + "." + e.key
		switch e.key {
		case "value":
			rec.Value = r.value(e.val, at)
		case "key":
			rec.Key = r.key(e.val, at)
		case "headers":
			rec.Headers = r.headers(e.val, at)
		case "timestamp":
			rec.Timestamp = r.timestamp(e.val, at)
		case "topic":
			rec.Origin.Topic, _ = r.str(e.val, at)
		case "partition":
			p, _ := r.integer(e.val, at, 0, 1<<31-1)
			rec.Origin.Partition = int32(p)
		case "offset":
			rec.Origin.Offset, _ = r.integer(e.val, at, 0, 1<<63-1)
		}
	}
	return rec, len(r.errs) == before
}

func (r *reader) expectedRecord(n *yaml.Node, what string) (expected, bool) {
	x := expected{pos: r.pos(n)}
	before := len(r.errs)
	if deref(n).Kind != yaml.MappingNode {
		r.add(n, "%s: want a record such as {value: {...}}, got %s", what, describe(deref(n)))
		return x, false
	}
	for _, e := range r.mapping(n, what, expectKeys) {
		at := what + "." + e.key
		switch e.key {
		case "value":
			x.value, x.hasValue = r.value(e.val, at), true
		case "key":
			x.key, x.hasKey = r.key(e.val, at), true
		case "headers":
			x.headers = r.headers(e.val, at)
		}
	}
	return x, len(r.errs) == before
}

// value is a record value: a string as its bytes, null as no value,
// anything else as JSON.
func (r *reader) value(n *yaml.Node, what string) []byte {
	v := deref(n)
	switch {
	case isNull(v):
		return nil
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str":
		return []byte(v.Value)
	}
	data, err := toJSON(v)
	if err != nil {
		r.add(n, "%s: %v", what, err)
	}
	return data
}

func (r *reader) key(n *yaml.Node, what string) []byte {
	if isNull(deref(n)) {
		return nil
	}
	s, _ := r.scalar(n, what)
	return []byte(s)
}

func (r *reader) headers(n *yaml.Node, what string) []flow.Header {
	var hs []flow.Header
	for _, e := range r.mapping(n, what, nil) {
		v := ""
		if !isNull(deref(e.val)) {
			var ok bool
			if v, ok = r.scalar(e.val, what+"."+e.key); !ok {
				continue
			}
		}
		hs = append(hs, flow.Header{Key: e.key, Value: []byte(v)})
	}
	return hs
}

// timestamp reads RFC 3339 text or Unix milliseconds.
func (r *reader) timestamp(n *yaml.Node, what string) time.Time {
	s, ok := r.scalar(n, what)
	if !ok {
		return time.Time{}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		r.add(n, "%s: want RFC 3339 time (2024-05-01T10:00:00Z) or Unix milliseconds, got %s", what, describe(deref(n)))
	}
	return t
}

func (r *reader) integer(n *yaml.Node, what string, lo, hi int64) (int64, bool) {
	s, ok := r.scalar(n, what)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		r.add(n, "%s: want a whole number from %d to %d, got %s", what, lo, hi, describe(deref(n)))
		return 0, false
	}
	return v, true
}

// checkAgainstPipeline checks the pipeline as each case will compile it,
// without building it, and the case's source and sink ids against it.
func (s *Suite) checkAgainstPipeline(r *reader) {
	for _, c := range s.Cases {
		opts := c.opts
		opts.CheckOnly = true
		compiled, err := config.Compile(s.Pipeline, opts, nil)
		if err != nil {
			r.errs = append(r.errs, c.relocate(err)...)
		}
		if compiled == nil {
			continue
		}
		var sources, sinks []string
		for _, n := range compiled.File.Nodes {
			switch n.Kind {
			case flow.KindSource:
				sources = append(sources, n.ID)
			case flow.KindSink:
				sinks = append(sinks, n.ID)
			}
		}
		for _, in := range c.inputs {
			if !slices.Contains(sources, in.source) {
				r.errs = append(r.errs, &config.Error{Pos: in.pos, Msg: fmt.Sprintf("case %q: inputs: %q is not a source of %s%s", c.Name, in.source, s.Pipeline, choices(in.source, sources))})
			}
		}
		for _, ex := range c.expect {
			if !slices.Contains(sinks, ex.sink) {
				r.errs = append(r.errs, &config.Error{Pos: ex.pos, Msg: fmt.Sprintf("case %q: expect: %q is not a sink of %s%s", c.Name, ex.sink, s.Pipeline, choices(ex.sink, sinks))})
			}
		}
	}
}

func choices(id string, ids []string) string {
	if s := spelling.Nearest(id, ids); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	if len(ids) == 0 {
		return ""
	}
	return " (it has " + strings.Join(ids, ", ") + ")"
}

// relocate points problems config found in an override at the test file
// line that made the override.
func (c *Case) relocate(err error) config.Errors {
	errs, ok := err.(config.Errors)
	if !ok {
		return config.Errors{{Msg: err.Error()}}
	}
	out := make(config.Errors, len(errs))
	for i, e := range errs {
		if p, ok := c.origins[e.Pos.Origin]; ok {
			e = &config.Error{Pos: p, Msg: e.Pos.Origin + ": " + e.Msg}
		}
		out[i] = e
	}
	return out
}
