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

func TestTypo(t *testing.T) {
	keys := []string{"type", "inputs", "buffer", "parallelism", "ordering", "on_error", "value", "key", "headers"}
	for word, want := range map[string]string{
		"expr": "", "tpye": "type", "typ": "type", "inptus": "inputs", "input": "inputs", "bufer": "buffer",
		"paralelism": "parallelism", "on-error": "on_error", "onerror": "on_error", "vaule": "value", "keys": "key",
		"header": "headers", "x": "", "whatever": "", "k": "", strings.Repeat("a", 100): "",
	} {
		if got := spelling.Typo(word, keys); got != want {
			t.Errorf("Typo(%q) = %q, want %q", word, got, want)
		}
	}
}
