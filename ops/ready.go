package ops

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicedev/sluice/flow"
)

// notReady is one node that said it is not ready, and why.
type notReady struct {
	node   string
	reason string
}

// readiness asks every component that can tell (flow.Readier) whether it
// is ready.
func readiness(p *flow.Pipeline) []notReady {
	var out []notReady
	for _, n := range p.Nodes() {
		r, ok := p.Component(n.ID).(flow.Readier)
		if !ok {
			continue
		}
		if err := askReady(r); err != nil {
			out = append(out, notReady{node: n.ID, reason: err.Error()})
		}
	}
	return out
}

// askReady calls Ready, turning a panic into a reason: a broken probe
// must make the pipeline unready, not take the listener down.
func askReady(r flow.Readier) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("readiness probe panicked: %v", v)
		}
	}()
	return r.Ready()
}

// readyHandler serves /readyz: 200 "ready" when every Readier is, else 503
// with one line per unready node.
func readyHandler(p *flow.Pipeline) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		bad := readiness(p)
		if len(bad) == 0 {
			fmt.Fprintln(w, "ready")
			return
		}
		var b strings.Builder
		b.WriteString("not ready\n")
		for _, nr := range bad {
			fmt.Fprintf(&b, "%s: %s\n", nr.node, nr.reason)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(b.String()))
	})
}
