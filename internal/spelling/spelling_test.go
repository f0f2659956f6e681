package spelling_test

import (
	"strings"
	"testing"

	"github.com/sluicedev/sluice/internal/spelling"
)

func TestNearest(t *testing.T) {
	ids := []string{"numbers", "shout", "out", strings.Repeat("x", 100)}
	for word, want := range map[string]string{
		"numbrs":                 "numbers",
		"shuot":                  "shout",
		"ot":                     "out",
		"zzzzzzzz":               "",
		strings.Repeat("x", 99):  "", // too long to be a typo
		strings.Repeat("y", 1e6): "", // and not compared at all
	} {
		if got := spelling.Nearest(word, ids); got != want {
			t.Errorf("Nearest(%.20q) = %q, want %q", word, got, want)
		}
	}
}
