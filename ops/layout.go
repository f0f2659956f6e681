package ops

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicedev/sluice/flow"
)

// Sizes of the graph drawing, in SVG user units.
const (
	boxW   = 240
	boxH   = 100
	laneH  = 14 // height of the slot an edge takes when it passes a column
	colGap = 90
	rowGap = 22
	margin = 16
)

// box is where one node is drawn.
type box struct{ X, Y, W, H int }

// point is a point of an edge's route.
type point struct{ X, Y int }

// arc is one data edge from node From to node To (indices into the node
// list). Route runs from the right side of From to the left side of To,
// through the lanes it takes in the columns between; D is the SVG path.
type arc struct {
	From, To int
	Route    []point
	D        string
}

// drawing is a layered layout of the DAG: one column per depth from the
// sources.
type drawing struct {
	Width, Height int
	Boxes         []box // by node index
	Arcs          []arc
}

// slot is one thing a column holds: a node's box, or a lane through which
// an edge spanning several columns passes (so it is not drawn under a
// box).
type slot struct {
	node  int // index of the node, or -1 for a lane
	col   int
	preds []int // slots in the previous column feeding this one
	y, h  int
}

// layOut places nodes in columns by their longest distance from a source,
// gives every edge that skips columns a lane in each column it crosses,
// orders each column by the mean height of what feeds it (fewer
// crossings), centres the columns, and routes each edge as curves between
// columns and straight lines through lanes.
func layOut(nodes []flow.NodeInfo) drawing {
	index := make(map[string]int, len(nodes))
	for i, n := range nodes {
		index[n.ID] = i
	}
	depth := depths(nodes, index)

	slots := make([]slot, len(nodes))
	for i := range nodes {
		slots[i] = slot{node: i, col: depth[i], h: boxH}
	}
	type edgeRoute struct {
		from, to int
		via      []int
	}
	var routes []edgeRoute
	for to, n := range nodes {
		for _, in := range n.Inputs {
			from, ok := index[in]
			if !ok || from == to {
				continue
			}
			r := edgeRoute{from: from, to: to}
			prev := from
			for c := depth[from] + 1; c < depth[to]; c++ {
				slots = append(slots, slot{node: -1, col: c, preds: []int{prev}, h: laneH})
				prev = len(slots) - 1
				r.via = append(r.via, prev)
			}
			if depth[from] < depth[to] {
				slots[to].preds = append(slots[to].preds, prev)
			}
			routes = append(routes, r)
		}
	}

	cols := 0
	for _, s := range slots {
		cols = max(cols, s.col+1)
	}
	columns := make([][]int, cols)
	for i, s := range slots {
		columns[s.col] = append(columns[s.col], i)
	}
	colHeight := func(members []int) int {
		h := 0
		for _, i := range members {
			h += slots[i].h
		}
		return h + max(len(members)-1, 0)*rowGap
	}
	tallest := 0
	for _, c := range columns {
		tallest = max(tallest, colHeight(c))
	}
	centre := func(i int) int { return slots[i].y + slots[i].h/2 }
	for c, members := range columns {
		if c > 0 {
			key := make(map[int]float64, len(members))
			for _, i := range members {
				key[i] = meanCentre(slots[i].preds, centre)
			}
			slices.SortStableFunc(members, func(a, b int) int { return cmp.Compare(key[a], key[b]) })
		}
		y := margin + (tallest-colHeight(members))/2
		for _, i := range members {
			slots[i].y = y
			y += slots[i].h + rowGap
		}
	}

	colX := func(c int) int { return margin + c*(boxW+colGap) }
	out := drawing{
		Width:  2*margin + cols*boxW + max(cols-1, 0)*colGap,
		Height: 2*margin + tallest,
		Boxes:  make([]box, len(nodes)),
	}
	for i := range nodes {
		s := slots[i]
		out.Boxes[i] = box{X: colX(s.col), Y: s.y, W: boxW, H: boxH}
	}
	for _, r := range routes {
		a, b := out.Boxes[r.from], out.Boxes[r.to]
		route := []point{{a.X + a.W, a.Y + a.H/2}}
		for _, v := range r.via {
			x, y := colX(slots[v].col), centre(v)
			route = append(route, point{x, y}, point{x + boxW, y})
		}
		route = append(route, point{b.X, b.Y + b.H/2})
		out.Arcs = append(out.Arcs, arc{From: r.from, To: r.to, Route: route, D: pathOf(route)})
	}
	return out
}

// pathOf draws a route: an S-curve across each gap between columns (pairs
// 0-1, 2-3, ...) and a straight line along each lane (pairs 1-2, 3-4, ...).
func pathOf(route []point) string {
	var b strings.Builder
	fmt.Fprintf(&b, "M%d %d", route[0].X, route[0].Y)
	for i := 1; i < len(route); i++ {
		p, q := route[i-1], route[i]
		if i%2 == 0 {
			fmt.Fprintf(&b, " L%d %d", q.X, q.Y)
			continue
		}
		mid := (p.X + q.X) / 2
		fmt.Fprintf(&b, " C%d %d %d %d %d %d", mid, p.Y, mid, q.Y, q.X, q.Y)
	}
	return b.String()
}

// meanCentre is the mean centre height of the given slots; a slot fed by
// none (a sink that only receives dead letters) sorts last.
func meanCentre(preds []int, centre func(int) int) float64 {
	if len(preds) == 0 {
		return float64(1 << 30)
	}
	sum := 0
	for _, p := range preds {
		sum += centre(p)
	}
	return float64(sum) / float64(len(preds))
}

// depths is each node's longest path from a source. A stage or sink with
// no inputs (one that only receives dead letters) goes in the last column.
// Cycles cannot occur in a validated pipeline; should one appear, the
// back edge is ignored rather than looping.
func depths(nodes []flow.NodeInfo, index map[string]int) []int {
	const (
		visiting = iota + 1 // zero: not seen yet
		done
	)
	depth := make([]int, len(nodes))
	state := make([]int, len(nodes))
	var visit func(i int) int
	visit = func(i int) int {
		switch state[i] {
		case done:
			return depth[i]
		case visiting:
			return 0
		}
		state[i] = visiting
		d := 0
		for _, in := range nodes[i].Inputs {
			if j, ok := index[in]; ok {
				d = max(d, visit(j)+1)
			}
		}
		depth[i], state[i] = d, done
		return d
	}
	last := 0
	for i := range nodes {
		last = max(last, visit(i))
	}
	for i, n := range nodes {
		if n.Kind != flow.KindSource && len(n.Inputs) == 0 {
			depth[i] = max(last, 1)
		}
	}
	return depth
}
