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
