package ops

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

func fetchGraph(t *testing.T, base string) graphState {
	t.Helper()
	code, hdr, body := get(t, base+"/graph.json", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("/graph.json: %d %s %q", code, hdr.Get("Content-Type"), body)
	}
	var g graphState
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatalf("/graph.json: %v\n%s", err, body)
	}
	return g
}

func TestGraphJSONOfALivePipeline(t *testing.T) {
	src := &numbers{n: -1, size: 50, pace: 5 * time.Millisecond}
	p := newChain("live", src, &counting{})
	base := serve(t, p, Config{}, nil)
	runInBackground(t, p)

	var g graphState
	eventually(t, 15*time.Second, "non-zero rates on every node", func() bool {
		g = fetchGraph(t, base)
		for _, n := range g.Nodes {
			if n.OutRate <= 0 || n.Kind != "source" && n.InRate <= 0 {
				return false
			}
		}
		return true
	})
	if g.Pipeline != "live" || g.Time.IsZero() {
		t.Errorf("pipeline %q at %v, want live at a real time", g.Pipeline, g.Time)
	}
	want := []struct {
		id, kind, typ string
		inputs        []string
	}{
		{"numbers", "source", "test_numbers", []string{}},
		{"copy", "stage", "test_copy", []string{"numbers"}},
		{"out", "sink", "test_count", []string{"copy"}},
	}
	if len(g.Nodes) != len(want) {
		t.Fatalf("%d nodes, want %d", len(g.Nodes), len(want))
	}
	for i, w := range want {
		n := g.Nodes[i]
		if n.ID != w.id || n.Kind != w.kind || n.Type != w.typ || !slices.Equal(n.Inputs, w.inputs) {
			t.Errorf("node %d = %s/%s/%s inputs %v, want %s/%s/%s inputs %v", i, n.ID, n.Kind, n.Type, n.Inputs, w.id, w.kind, w.typ, w.inputs)
		}
		if n.Out <= 0 || !n.Running {
			t.Errorf("%s: out %d running %v, want records and running", n.ID, n.Out, n.Running)
		}
		if n.Fill < 0 || n.Fill > 1 || n.Buffered < 0 {
			t.Errorf("%s: fill %v buffered %d out of range", n.ID, n.Fill, n.Buffered)
		}
		if n.Kind == "source" && n.Capacity != 0 || n.Kind != "source" && n.Capacity != flow.DefaultBuffer {
			t.Errorf("%s: capacity %d", n.ID, n.Capacity)
		}
	}
}

func TestGraphJSONListsNoInputsAsAnEmptyList(t *testing.T) {
	p := newChain("shape", &numbers{n: 1, size: 1}, &counting{})
	base := serve(t, p, Config{}, nil)
	_, _, body := get(t, base+"/graph.json", "")
	if !strings.Contains(body, `"inputs":[]`) {
		t.Errorf("a source's inputs are not []: %s", body)
	}
}

func TestRatesAreDeltasOverAtLeastTheMinimumWindow(t *testing.T) {
	a, b := &flow.NodeStats{}, &flow.NodeStats{}
	stats := []*flow.NodeStats{a, b}
	tr := newRateTracker(len(stats))
	t0 := time.Unix(1000, 0)
	a.In.Add(500)
	if in, out := tr.update(stats, t0); in[0] != 0 || out[0] != 0 {
		t.Fatalf("first reading has rates %v %v, want zeros", in, out)
	}
	a.In.Add(100)
	a.Out.Add(50)
	b.Out.Add(400)
	in, out := tr.update(stats, t0.Add(2*time.Second))
	if in[0] != 50 || out[0] != 25 || in[1] != 0 || out[1] != 200 {
		t.Fatalf("rates over 2s: in %v out %v, want [50 0] [25 200]", in, out)
	}
	a.In.Add(1000)
	in, _ = tr.update(stats, t0.Add(2*time.Second+minRateWindow/2))
	if in[0] != 50 {
		t.Fatalf("a reading inside the window changed the rate to %v", in[0])
	}
	in, _ = tr.update(stats, t0.Add(3*time.Second))
	if in[0] != 1000 {
		t.Fatalf("rate over the next second = %v, want 1000", in[0])
	}
}

func TestLayoutColumnsFollowDepth(t *testing.T) {
	nodes := []flow.NodeInfo{
		{ID: "a", Kind: flow.KindSource},
		{ID: "b", Kind: flow.KindSource},
		{ID: "m", Kind: flow.KindStage, Inputs: []string{"a"}},
		{ID: "j", Kind: flow.KindStage, Inputs: []string{"m", "b"}},
		{ID: "out", Kind: flow.KindSink, Inputs: []string{"j"}},
		{ID: "dlq", Kind: flow.KindSink},
		{ID: "side", Kind: flow.KindSink, Inputs: []string{"a"}},
	}
	d := layOut(nodes)
	col := func(id string) int {
		i := slices.IndexFunc(nodes, func(n flow.NodeInfo) bool { return n.ID == id })
		return (d.Boxes[i].X - margin) / (boxW + colGap)
	}
	wantCol := map[string]int{"a": 0, "b": 0, "m": 1, "side": 1, "j": 2, "out": 3, "dlq": 3}
	for id, c := range wantCol {
		if got := col(id); got != c {
			t.Errorf("%s in column %d, want %d", id, got, c)
		}
	}
	if len(d.Arcs) != 5 {
		t.Errorf("%d edges, want 5", len(d.Arcs))
	}
	for i, p := range d.Boxes {
		if p.X < 0 || p.Y < 0 || p.X+p.W > d.Width || p.Y+p.H > d.Height {
			t.Errorf("%s drawn outside the canvas: %+v in %dx%d", nodes[i].ID, p, d.Width, d.Height)
		}
		for j, q := range d.Boxes[:i] {
			if p.X < q.X+q.W && q.X < p.X+p.W && p.Y < q.Y+q.H && q.Y < p.Y+p.H {
				t.Errorf("%s overlaps %s", nodes[i].ID, nodes[j].ID)
			}
		}
	}
}

func TestEdgesSkippingColumnsPassBesideBoxes(t *testing.T) {
	nodes := []flow.NodeInfo{
		{ID: "a", Kind: flow.KindSource},
		{ID: "b", Kind: flow.KindSource},
		{ID: "m1", Kind: flow.KindStage, Inputs: []string{"a"}},
		{ID: "m2", Kind: flow.KindStage, Inputs: []string{"m1"}},
		{ID: "j", Kind: flow.KindStage, Inputs: []string{"m2", "b"}}, // b -> j skips two columns
		{ID: "out", Kind: flow.KindSink, Inputs: []string{"j", "a"}}, // a -> out skips three
	}
	d := layOut(nodes)
	skipping := 0
	for _, a := range d.Arcs {
		r := a.Route
		if r[0].X != d.Boxes[a.From].X+boxW || r[len(r)-1].X != d.Boxes[a.To].X {
			t.Errorf("%s -> %s does not run from side to side: %v", nodes[a.From].ID, nodes[a.To].ID, r)
		}
		if len(r) > 2 {
			skipping++
		}
		for i := 2; i < len(r); i += 2 { // lane segments
			p, q := r[i-1], r[i]
			if p.Y != q.Y {
				t.Errorf("lane segment %v-%v is not horizontal", p, q)
			}
			for j, b := range d.Boxes {
				if p.X < b.X+b.W && b.X < q.X && b.Y <= p.Y && p.Y <= b.Y+b.H {
					t.Errorf("%s -> %s passes under %s at y %d", nodes[a.From].ID, nodes[a.To].ID, nodes[j].ID, p.Y)
				}
			}
		}
	}
	if skipping != 2 {
		t.Errorf("%d edges with lanes, want 2", skipping)
	}
}

func TestLayoutSurvivesBadGraphs(t *testing.T) {
	cyclic := []flow.NodeInfo{
		{ID: "x", Kind: flow.KindStage, Inputs: []string{"y"}},
		{ID: "y", Kind: flow.KindStage, Inputs: []string{"x", "missing"}},
	}
	d := layOut(cyclic)
	if len(d.Boxes) != 2 {
		t.Fatalf("%d boxes, want 2", len(d.Boxes))
	}
	if d := layOut(nil); len(d.Boxes) != 0 || d.Width <= 0 {
		t.Fatalf("empty graph: %+v", d)
	}
}

func TestPageShowsEveryNode(t *testing.T) {
	p := flow.New("page", flow.WithLogger(quietLog())).
		Source("in<&>", &numbers{n: 1, size: 1}, flow.Type("t1")).
		Sink("a-very-long-sink-name-that-does-not-fit-the-box", &counting{}, flow.Inputs("in<&>"), flow.Type("t2"))
	base := serve(t, p, Config{}, nil)
	code, hdr, page := get(t, base+"/graph", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("/graph: %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`data-node="in&lt;&amp;&gt;"`, // escaped, not markup
		`data-node="a-very-long-sink-name-that-does-not-fit-the-box"`,
		"a-very-long-sink-name-tha…",
		`<path class="edge" data-to="a-very-long-sink-name-that-does-not-fit-the-box"`,
		"fetch(\"graph.json\"",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, banned := range []string{"src=\"http", "href=\"http", "<link"} {
		if strings.Contains(page, banned) {
			t.Errorf("page loads an external asset (%q)", banned)
		}
	}
}

func TestHuman(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1.0k", 12345: "12.3k", 2.5e6: "2.5M"} {
		if got := human(v); got != want {
			t.Errorf("human(%v) = %q, want %q", v, got, want)
		}
	}
}

// statefulStage passes batches through and says where it keeps state.
type statefulStage struct{ where string }

func (s statefulStage) Stateful() string { return s.where }

func (statefulStage) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	for b := range in {
		if err := out.Emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func TestGraphMarksStatefulStages(t *testing.T) {
	p := flow.New("stateful", flow.WithLogger(quietLog())).
		Source("in", &numbers{n: 1, size: 1}, flow.Type("t1")).
		Stage("counts", statefulStage{"changelog"}, flow.Inputs("in"), flow.Type("window")).
		Stage("plain", flow.ProcessorStage(passthrough), flow.Inputs("counts"), flow.Type("map")).
		Sink("out", &counting{}, flow.Inputs("plain"), flow.Type("t2"))
	base := serve(t, p, Config{}, nil)
	g := fetchGraph(t, base)
	for _, n := range g.Nodes {
		want := map[string]string{"counts": "changelog"}[n.ID]
		if n.State != want {
			t.Errorf("node %s: state %q, want %q", n.ID, n.State, want)
		}
	}
	_, _, page := get(t, base+"/graph", "")
	if !strings.Contains(page, "stage · window · state: changelog") {
		t.Error("the page does not mark the stateful stage")
	}
	if strings.Contains(page, "map · state") {
		t.Error("the page marks a stateless stage")
	}
}
