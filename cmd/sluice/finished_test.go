package main

import (
	"strings"
	"testing"

	"github.com/sluicedev/sluice/flow"
)

// "all records were written" must never be said when on_error skipped or
// dead-lettered some (issue 9: the log said it while records were dropped).
func TestFinishedMessageCountsSkippedAndDeadLettered(t *testing.T) {
	clean := []*flow.NodeStats{{ID: "gen"}, {ID: "out"}}
	if got := finishedMessage(clean); !strings.Contains(got, "all records were written") {
		t.Fatalf("clean run: %q", got)
	}
	f, g := &flow.NodeStats{ID: "f"}, &flow.NodeStats{ID: "g"}
	f.Skipped.Add(4)
	g.DeadLettered.Add(2)
	got := finishedMessage([]*flow.NodeStats{{ID: "gen"}, f, g})
	if strings.Contains(got, "all records were written") {
		t.Fatalf("run with skips claims every record was written: %q", got)
	}
	for _, want := range []string{"4 records were skipped", "2 dead-lettered", "at f, g"} {
		if !strings.Contains(got, want) {
			t.Fatalf("%q lacks %q", got, want)
		}
	}
}
