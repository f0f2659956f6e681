// Package spelling finds what a mistyped name was meant to be, for the
// "did you mean" of error messages: node ids, expression variables, test
// keys. (The engine, flow, imports only the standard library and keeps a
// copy of Nearest for its graph errors; a test there keeps the two alike.)
package spelling

// maxTypo is the longest word Nearest compares: a longer one is no typo
// of a name, and comparing it would cost its length squared per candidate.
const maxTypo = 64

// Nearest returns the candidate closest to word by edit distance, or "" if
// none is close enough to be a plausible typo. Its cost is bounded per
// candidate: words and candidates longer than 64 bytes are not compared,
// nor candidates whose length alone puts them too far.
func Nearest(word string, candidates []string) string {
	if len(word) > maxTypo {
		return ""
	}
	best, bestD := "", len(word)/2+2
	for _, c := range candidates {
		if len(c) > maxTypo || abs(len(c)-len(word)) >= bestD {
			continue // the distance is at least the difference in length
		}
		if d := editDistance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func abs(n int) int { return max(n, -n) }

// editDistance counts the insertions, deletions and substitutions of
// bytes that turn a into b (Levenshtein).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Typo returns the candidate word is a plausible typo of, stricter than
// Nearest (for a key, where a miss is better answered by the list of
// valid keys than by the least unlike of them): one edit away
// (a character added, dropped, changed, or two swapped), or one per three
// characters of a longer word; the closest wins, the first among equals.
// Words longer than maxTypo are not compared (the cost is their length
// squared).
func Typo(word string, candidates []string) string {
	const maxTypo = 64
	if len(word) > maxTypo {
		return ""
	}
	w := []rune(word)
	best, bestD := "", max(1, len(w)/3)+1
	for _, c := range candidates {
		if len(c) > maxTypo {
			continue
		}
		r := []rune(c)
		if max(len(r)-len(w), len(w)-len(r)) >= bestD {
			continue // the distance is at least the difference in length
		}
		if d := transposeDistance(w, r); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// transposeDistance counts the insertions, deletions, substitutions and swaps
// of adjacent characters that turn a into b (optimal string alignment).
func transposeDistance(a, b []rune) int {
	rows := make([][]int, len(a)+1)
	for i := range rows {
		rows[i] = make([]int, len(b)+1)
		rows[i][0] = i
	}
	for j := range rows[0] {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(rows[i-1][j]+1, rows[i][j-1]+1, rows[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, rows[i-2][j-2]+1)
			}
			rows[i][j] = d
		}
	}
	return rows[len(a)][len(b)]
}
