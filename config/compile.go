package config

import (
	"errors"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Options say how Compile reads a pipeline file: the overrides layered
// over it, and what the caller adds to the build.
type Options struct {
	// Sets are "--set path=value" flags, applied last, in order. The value
	// is text, read as the field's type wants (settings.buffer=10 is a
	// number); a flow list or mapping is YAML: inputs=[a,b] is a list.
	Sets []string
	// Environ is the environment as os.Environ returns it. It supplies
	// ${VAR} interpolation and the SLUICE_ overrides; nil means an empty
	// environment, so pass os.Environ() explicitly.
	Environ []string

	// BeforeBuild, if set, runs once the file is checked without a
	// problem, before any node is built: `sluice run` binds its HTTP
	// listener and starts the dev broker there. It may change env (the
	// copy Compile builds with: the dev broker's address), and returns
	// pipeline options applied after the file's settings (such as
	// flow.WithObserver). An error of type Errors joins the file's
	// problems, and the nodes are still built to report theirs; any other
	// error ends Compile at once, before anything is built.
	BeforeBuild func(f *File, env *registry.Env) ([]flow.Option, error)
	// Replace, if set, supplies components in place of the configured
	// ones (see Replacer): `sluice test` swaps sources and sinks for
	// in-memory ones.
	Replace Replacer
	// CheckOnly checks the file, its values and its graph, but builds no
	// node: nothing is started or connected, and the result has no
	// Pipeline. `sluice graph` draws what it checked.
	CheckOnly bool
}

// Replacer returns the component (a flow.Source, flow.Stage or flow.Sink
// of the node's kind) to use for node n instead of building it from its
// Spec, or nil to build it as configured. A replaced node is still checked
// against its Spec and keeps its inputs, buffer, parallelism and error
// policy; only its Spec's Build is not run.
type Replacer func(n Node) any

// Compiled is a pipeline file compiled: its checked config, and the
// pipeline built from it.
type Compiled struct {
	// File is the checked config: name, settings and nodes, each node's
	// values typed and defaulted (Node.Config).
	File *File
	// Pipeline is ready to Run, which closes its components when it ends.
	// It is nil under Options.CheckOnly, and when Compile failed.
	Pipeline *flow.Pipeline

	b *builder
}

// Compile turns the pipeline file at path into a pipeline, in one pass: it
// reads the file once, layers the SLUICE_* environment overrides and
// opts.Sets over it, checks every value against the declaration of what
// it configures, builds each node through its registry Spec, and checks
// the graph. The error is Errors, every problem found, each at its
// position (file:line:col, or the variable or flag it came from). A node
// with problems of its own is not built, but the others are, so that
// their problems are reported in the same round; then whatever was built
// is closed, and the result has no Pipeline. It still has the File,
// unless the file could not be read or parsed, for a caller to say more
// about it (`sluice test` checks its cases' ids against the nodes).
//
// env gives each Build its context, logger, plugin directories and dev
// brokers (nil: defaults). Compile works on a copy whose BaseDir is the
// file's directory, where relative paths in the config resolve.
func Compile(path string, opts Options, env *registry.Env) (*Compiled, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, Errors{{Pos: Pos{File: path}, Msg: err.Error()}}
	}
	return compile(path, data, opts, env)
}

func compile(file string, data []byte, opts Options, env *registry.Env) (*Compiled, error) {
	f, err := load(file, data, opts)
	if f == nil {
		return nil, err
	}
	b := newBuilder(f, env)
	b.replace = opts.Replace
	if len(b.errs) == 0 && opts.BeforeBuild != nil {
		extra, err := opts.BeforeBuild(f, &b.env)
		var errs Errors
		switch {
		case errors.As(err, &errs):
			b.errs = append(b.errs, errs...)
		case err != nil:
			return &Compiled{File: f}, err
		default:
			b.extra = extra
		}
	}
	p := b.build(!opts.CheckOnly)
	if len(b.errs) > 0 {
		b.errs = append(b.errs, b.closeAll()...)
		return &Compiled{File: f}, b.errs.err()
	}
	if opts.CheckOnly {
		p = nil
	}
	return &Compiled{File: f, Pipeline: p, b: b}, nil
}

// Close closes every component Compile built, sources first, within the
// drain timeout: for a caller that does not run the pipeline, as `sluice
// validate`. A problem closing is an Error at the node.
func (c *Compiled) Close() error {
	if c == nil || c.b == nil {
		return nil
	}
	return c.b.closeAll().err()
}

// Load reads, interpolates, layers and checks a pipeline file, without
// building it: the first half of Compile. The error is Errors. Unless the
// file could not be read or parsed, the File is returned as well, and
// Build reports its problems with those of the build and the graph.
func Load(path string, opts Options) (*File, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, Errors{{Pos: Pos{File: path}, Msg: err.Error()}}
	}
	return load(path, data, opts)
}

// Build is the second half of Compile, for a File from Load: it builds
// every node and wires the pipeline. The error is Errors: Load's problems,
// the build's and the graph's; whatever was built is then closed. opts
// are applied after the file's settings (the host's additions, such as
// flow.WithObserver).
func Build(f *File, env *registry.Env, opts ...flow.Option) (*flow.Pipeline, error) {
	if f == nil {
		return nil, Errors{{Msg: "config: Build needs a File"}}
	}
	b := newBuilder(f, env)
	b.extra = opts
	p := b.build(true)
	if len(b.errs) > 0 {
		b.errs = append(b.errs, b.closeAll()...)
		return nil, b.errs.err()
	}
	return p, nil
}
