package ops

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/sluicedev/sluice/flow"
)

// Box and spacing sizes of the graph drawing, in SVG user units.
const (
	boxW   = 240
	boxH   = 84
	colGap = 90
	rowGap = 26
	margin = 16
)

// box is where one node is drawn.
type box struct{ X, Y, W, H int }

// arc is one data edge from node From to node To (indices into the node
// list), drawn as the SVG path D.
type arc struct {
	From, To int
	D        string
}

// drawing is a layered layout of the DAG: one column per depth from the
// sources, boxes in node order.
type drawing struct {
	Width, Height int
	Boxes         []box
	Arcs          []arc
}

// layOut places nodes in columns by their longest distance from a source,
// orders each column by the mean height of its inputs (fewer crossings),
// centres the columns and routes each edge as a curve from the right side
// of its input to the left side of its node.
func layOut(nodes []flow.NodeInfo) drawing {
	index := make(map[string]int, len(nodes))
	for i, n := range nodes {
		index[n.ID] = i
	}
	depth := depths(nodes, index)

	cols := 0
	for _, d := range depth {
		cols = max(cols, d+1)
	}
	columns := make([][]int, cols)
	for i, d := range depth {
		columns[d] = append(columns[d], i)
	}
	rows := 0
	for _, c := range columns {
		rows = max(rows, len(c))
	}

	pitch := boxH + rowGap
	out := drawing{
		Width:  2*margin + cols*boxW + max(cols-1, 0)*colGap,
		Height: 2*margin + rows*boxH + max(rows-1, 0)*rowGap,
		Boxes:  make([]box, len(nodes)),
	}
	centreY := func(i int) int { return out.Boxes[i].Y + boxH/2 }
	for c, members := range columns {
		if c > 0 {
			key := make(map[int]float64, len(members))
			for _, i := range members {
				key[i] = meanInputY(nodes[i], index, depth, c, centreY)
			}
			slices.SortStableFunc(members, func(a, b int) int { return cmp.Compare(key[a], key[b]) })
		}
		top := margin + (rows-len(members))*pitch/2
		for r, i := range members {
			out.Boxes[i] = box{X: margin + c*(boxW+colGap), Y: top + r*pitch, W: boxW, H: boxH}
		}
	}

	for to, n := range nodes {
		for _, in := range n.Inputs {
			from, ok := index[in]
			if !ok || from == to {
				continue
			}
			a, b := out.Boxes[from], out.Boxes[to]
			x1, y1 := a.X+a.W, a.Y+a.H/2
			x2, y2 := b.X, b.Y+b.H/2
			mid := (x1 + x2) / 2
			out.Arcs = append(out.Arcs, arc{From: from, To: to,
				D: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, mid, y1, mid, y2, x2, y2)})
		}
	}
	return out
}

// meanInputY is the mean centre height of a node's inputs already placed
// in earlier columns; a node with none sorts last.
func meanInputY(n flow.NodeInfo, index map[string]int, depth []int, col int, centreY func(int) int) float64 {
	sum, count := 0, 0
	for _, in := range n.Inputs {
		if j, ok := index[in]; ok && depth[j] < col {
			sum += centreY(j)
			count++
		}
	}
	if count == 0 {
		return float64(1 << 30)
	}
	return float64(sum) / float64(count)
}

// depths is each node's longest path from a source. A stage or sink with
// no inputs (one that only receives dead letters) goes in the last column.
// Cycles cannot occur in a validated pipeline; should one appear, the
// back edge is ignored rather than looping.
func depths(nodes []flow.NodeInfo, index map[string]int) []int {
	const (
		unseen = iota
		visiting
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
