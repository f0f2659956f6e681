package flow

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluicedev/sluice/internal/spelling"
)

// The engine's nearest is a copy of internal/spelling.Nearest (flow
// imports only the standard library): both must give the same answers.
func TestNearestIsSpellingNearest(t *testing.T) {
	ids := []string{"numbers", "shout", "out", "gen", "dead_letters", "enrich", strings.Repeat("x", 100)}
	words := []string{"numbrs", "shuot", "ot", "zzzzzzzz", "", "gne", "dead-letter", strings.Repeat("x", 99), strings.Repeat("y", 1e6)}
	rng := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdegnorstu_"
	for range 2000 {
		w := make([]byte, rng.IntN(12))
		for i := range w {
			w[i] = letters[rng.IntN(len(letters))]
		}
		words = append(words, string(w))
	}
	for _, w := range words {
		if got, want := nearest(w, ids), spelling.Nearest(w, ids); got != want {
			t.Errorf("nearest(%.20q) = %q, spelling.Nearest = %q", w, got, want)
		}
	}
}
