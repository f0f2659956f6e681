package pipelinetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// step is one line of a sink's diff.
type step struct {
	op   byte // ' ' as expected, '~' changed, '-' missing, '+' extra
	w, g int  // index into the expected and the got records; -1 if none
}

// maxCells bounds the comparison table of an ordered diff; past it records
// are paired by position, which is still right when only values changed.
const maxCells = 4 << 20

// alignOrdered lines up expected and got records along a longest common
// subsequence of matching ones; between two matches, missing and extra
// records are paired as changed, in order.
func alignOrdered(ws []want, gs []got) []step {
	n, m := len(ws), len(gs)
	var raw []step
	if (n+1)*(m+1) > maxCells {
		for i := 0; i < max(n, m); i++ {
			switch {
			case i >= n:
				raw = append(raw, step{'+', -1, i})
			case i >= m:
				raw = append(raw, step{'-', i, -1})
			case ws[i].matches(&gs[i]):
				raw = append(raw, step{' ', i, i})
			default:
				raw = append(raw, step{'-', i, -1}, step{'+', -1, i})
			}
		}
		return pairChanges(raw)
	}
	// lcs[i][j] is the longest match of ws[i:] and gs[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	eq := make([][]bool, n)
	for i := n - 1; i >= 0; i-- {
		eq[i] = make([]bool, m)
		for j := m - 1; j >= 0; j-- {
			eq[i][j] = ws[i].matches(&gs[j])
			if eq[i][j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && eq[i][j] && lcs[i][j] == lcs[i+1][j+1]+1:
			raw = append(raw, step{' ', i, j})
			i++
			j++
		case j == m || i < n && lcs[i+1][j] >= lcs[i][j+1]:
			raw = append(raw, step{'-', i, -1})
			i++
		default:
			raw = append(raw, step{'+', -1, j})
			j++
		}
	}
	return pairChanges(raw)
}

// pairChanges turns the missing and extra records between two matches
// into changed pairs, in order, keeping the surplus as missing or extra.
func pairChanges(raw []step) []step {
	out := make([]step, 0, len(raw))
	var miss, extra []int
	flush := func() {
		k := min(len(miss), len(extra))
		for x := 0; x < k; x++ {
			out = append(out, step{'~', miss[x], extra[x]})
		}
		for _, w := range miss[k:] {
			out = append(out, step{'-', w, -1})
		}
		for _, g := range extra[k:] {
			out = append(out, step{'+', -1, g})
		}
		miss, extra = miss[:0], extra[:0]
	}
	for _, s := range raw {
		switch s.op {
		case '-':
			miss = append(miss, s.w)
		case '+':
			extra = append(extra, s.g)
		default:
			flush()
			out = append(out, s)
		}
	}
	flush()
	return out
}

// alignUnordered matches expected to got records in any order, as many as
// can be (a maximum bipartite matching: an expectation that leaves out the
// key may match several records), then lists what is left.
func alignUnordered(ws []want, gs []got) []step {
	n, m := len(ws), len(gs)
	if n*m > maxCells {
		return alignOrdered(ws, gs) // positional: too many to match exhaustively
	}
	adj := make([][]int, n)
	for i := range ws {
		for j := range gs {
			if ws[i].matches(&gs[j]) {
				adj[i] = append(adj[i], j)
			}
		}
	}
	owner := make([]int, m) // want matched to each got, -1 if none
	for j := range owner {
		owner[j] = -1
	}
	var seen []bool
	var augment func(i int) bool
	augment = func(i int) bool {
		for _, j := range adj[i] {
			if seen[j] {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || augment(owner[j]) {
				owner[j] = i
				return true
			}
		}
		return false
	}
	for i := range ws {
		seen = make([]bool, m)
		augment(i)
	}
	matchOf := make([]int, n)
	for i := range matchOf {
		matchOf[i] = -1
	}
	for j, i := range owner {
		if i >= 0 {
			matchOf[i] = j
		}
	}
	var out []step
	for i, j := range matchOf {
		if j >= 0 {
			out = append(out, step{' ', i, j})
		} else {
			out = append(out, step{'-', i, -1})
		}
	}
	for j, i := range owner {
		if i < 0 {
			out = append(out, step{'+', -1, j})
		}
	}
	return out
}

// clean reports that a diff found nothing wrong.
func clean(steps []step) bool {
	for _, s := range steps {
		if s.op != ' ' {
			return false
		}
	}
	return true
}

// keepAround is how many matching lines a long run of them keeps at each
// end; the rest is summarised in one line.
const keepAround = 2

// sinkDiff renders one sink's diff.
type sinkDiff struct {
	sink      string
	ws        []want
	gs        []got
	steps     []step
	unordered bool
	// showKey and headerKeys: what the expectations of this sink look at,
	// so the got records show the same parts.
	showKey    bool
	headerKeys []string
}

func newSinkDiff(sink string, ws []want, gs []got, unordered bool) *sinkDiff {
	d := &sinkDiff{sink: sink, ws: ws, gs: gs, unordered: unordered}
	for _, w := range ws {
		d.showKey = d.showKey || w.hasKey
		for _, h := range w.headers {
			if !slices.Contains(d.headerKeys, h.Key) {
				d.headerKeys = append(d.headerKeys, h.Key)
			}
		}
	}
	if unordered {
		d.steps = alignUnordered(ws, gs)
	} else {
		d.steps = alignOrdered(ws, gs)
	}
	return d
}

func (d *sinkDiff) write(b *strings.Builder) {
	var miss, extra, changed int
	for _, s := range d.steps {
		switch s.op {
		case '-':
			miss++
		case '+':
			extra++
		case '~':
			changed++
		}
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{miss, "missing"}, {extra, "extra"}, {changed, "changed"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	order := "in order"
	if d.unordered {
		order = "in any order"
	}
	fmt.Fprintf(b, "sink %s: %s (want %s, got %d, %s)\n", d.sink, strings.Join(parts, ", "), plural(len(d.ws), "record"), len(d.gs), order)
	for k := 0; k < len(d.steps); k++ {
		s := d.steps[k]
		if s.op == ' ' {
			end := k
			for end < len(d.steps) && d.steps[end].op == ' ' {
				end++
			}
			run := d.steps[k:end]
			if len(run) > 2*keepAround+1 {
				for _, r := range run[:keepAround] {
					fmt.Fprintf(b, "    %s\n", d.gotText(r.g))
				}
				fmt.Fprintf(b, "    ... %d more as expected\n", len(run)-2*keepAround)
				run = run[len(run)-keepAround:]
			}
			for _, r := range run {
				fmt.Fprintf(b, "    %s\n", d.gotText(r.g))
			}
			k = end - 1
			continue
		}
		switch s.op {
		case '-':
			fmt.Fprintf(b, "  - %s  [missing, line %d]\n", d.wantText(s.w), d.ws[s.w].pos.Line)
		case '+':
			fmt.Fprintf(b, "  + %s  [extra]\n", d.gotText(s.g))
		case '~':
			fmt.Fprintf(b, "  ~ %s  [want, line %d]\n", d.wantText(s.w), d.ws[s.w].pos.Line)
			fmt.Fprintf(b, "    %s  [got: %s]\n", d.gotText(s.g), d.differences(s.w, s.g))
		}
	}
}

func (d *sinkDiff) wantText(i int) string {
	w := &d.ws[i]
	var b strings.Builder
	if w.hasValue {
		b.WriteString(show(w.payload))
	} else {
		b.WriteString("<any value>")
	}
	if w.hasKey {
		fmt.Fprintf(&b, " key=%s", showBytes(w.key))
	}
	if len(w.headers) > 0 {
		hs := make([]string, len(w.headers))
		for k, h := range w.headers {
			hs[k] = h.Key + "=" + showBytes(h.Value)
		}
		fmt.Fprintf(&b, " headers{%s}", strings.Join(hs, ", "))
	}
	return b.String()
}

func (d *sinkDiff) gotText(j int) string {
	g := &d.gs[j]
	var b strings.Builder
	b.WriteString(show(g.payload))
	if d.showKey {
		fmt.Fprintf(&b, " key=%s", showBytes(g.rec.Key))
	}
	if len(d.headerKeys) > 0 {
		hs := make([]string, len(d.headerKeys))
		for k, name := range d.headerKeys {
			if v, ok := g.rec.Header(name); ok {
				hs[k] = name + "=" + showBytes(v)
			} else {
				hs[k] = name + " absent"
			}
		}
		fmt.Fprintf(&b, " headers{%s}", strings.Join(hs, ", "))
	}
	return b.String()
}

// differences names the parts of got record j that do not meet
// expectation i.
func (d *sinkDiff) differences(i, j int) string {
	w, g := &d.ws[i], &d.gs[j]
	var parts []string
	if w.hasValue && !sameValue(w.payload, g.payload) {
		parts = append(parts, "value")
	}
	if w.hasKey && !bytes.Equal(w.key, g.rec.Key) {
		parts = append(parts, "key")
	}
	for _, h := range w.headers {
		if v, ok := g.rec.Header(h.Key); !ok || !bytes.Equal(v, h.Value) {
			parts = append(parts, "header "+h.Key)
		}
	}
	if len(parts) == 1 {
		return parts[0] + " differs"
	}
	return strings.Join(parts, ", ") + " differ"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
