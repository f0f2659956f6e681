package pipelinetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Run runs the cases in order, each on a freshly built pipeline. env gives
// the context, logger and plugin directories stages are built with (nil:
// defaults). A failing case is not an error: it is a Result with a
// Failure. The error is config.Errors when a case's pipeline cannot be
// built, or ctx's error when ctx ended; the report then holds the cases
// run so far.
func (s *Suite) Run(ctx context.Context, env *registry.Env) (*Report, error) {
	e := registry.Env{}
	if env != nil {
		e = *env
	}
	if e.Context == nil {
		e.Context = ctx
	}
	rep := &Report{}
	for _, c := range s.Cases {
		res, err := s.runCase(ctx, c, &e)
		if err != nil {
			return rep, err
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func (s *Suite) runCase(ctx context.Context, c *Case, env *registry.Env) (Result, error) {
	res := Result{Name: c.Name, Pos: c.Pos}
	h := newHarness(c)
	opts := c.opts
	opts.Replace = h.replace
	compiled, err := config.Compile(s.Pipeline, opts, env)
	if err != nil {
		return res, c.relocate(err)
	}
	p := compiled.Pipeline
	runCtx, cancel := context.WithTimeout(ctx, s.Timeout)
	runErr := p.Run(runCtx)
	timedOut := errors.Is(runCtx.Err(), context.DeadlineExceeded)
	cancel()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Failure = h.judge(c, runErr, timedOut, s.Timeout)
	return res, nil
}

// harness is one case's in-memory sources and sinks.
type harness struct {
	inputs  map[string][]flow.Record
	sources []*memSource
	sinks   map[string]*collector
}

func newHarness(c *Case) *harness {
	h := &harness{inputs: map[string][]flow.Record{}, sinks: map[string]*collector{}}
	for _, in := range c.inputs {
		h.inputs[in.source] = in.records
	}
	return h
}

// replace is the config.Replacer: every source and sink becomes an
// in-memory one; stages are built as configured.
func (h *harness) replace(n config.Node) any {
	switch n.Kind {
	case flow.KindSource:
		s := &memSource{id: n.ID, records: h.inputs[n.ID]}
		h.sources = append(h.sources, s)
		return s
	case flow.KindSink:
		c := &collector{}
		h.sinks[n.ID] = c
		return c
	}
	return nil
}

// judge says what went wrong in a case, "" when nothing did.
func (h *harness) judge(c *Case, runErr error, timedOut bool, timeout time.Duration) string {
	var b strings.Builder
	switch {
	case timedOut:
		fmt.Fprintf(&b, "did not finish within %s: a stage may be waiting for something that never comes (raise timeout in the test file if it is only slow)\n", timeout)
		if runErr != nil {
			fmt.Fprintf(&b, "the drain then failed: %v\n", runErr)
		}
	case c.wantError && runErr == nil:
		fmt.Fprintf(&b, "want the run to fail with an error containing %q; it succeeded\n", c.expectError)
	case c.wantError && !strings.Contains(runErr.Error(), c.expectError):
		fmt.Fprintf(&b, "want the run to fail with an error containing %q; it failed with: %v\n", c.expectError, runErr)
	case !c.wantError && runErr != nil:
		fmt.Fprintf(&b, "the run failed: %v\n", runErr)
	case !c.wantError:
		for _, s := range h.sources {
			if p := s.ackProblem(); p != "" {
				b.WriteString(p + "\n")
			}
		}
	}
	for _, ex := range c.expect {
		ws := make([]want, len(ex.records))
		for i, x := range ex.records {
			ws[i] = want{expected: x, payload: newPayload(x.value)}
		}
		var recs []flow.Record
		if col := h.sinks[ex.sink]; col != nil {
			recs = col.got()
		}
		gs := make([]got, len(recs))
		for i, r := range recs {
			gs[i] = got{rec: r, payload: newPayload(r.Value)}
		}
		if d := newSinkDiff(ex.sink, ws, gs, c.unordered); !clean(d.steps) {
			d.write(&b)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
