package config

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

func TestReplaceSwapsOnlyWhatItReturns(t *testing.T) {
	resetFakes()
	swapped := map[string]*memSink{"k1": {}}
	var asked []string
	c, err := Compile("testdata/good/fanout.yaml", Options{Replace: func(n Node) any {
		asked = append(asked, n.ID)
		switch {
		case n.Kind == flow.KindSource && n.ID == "a":
			return &gen{id: "a", count: 1}
		case swapped[n.ID] != nil:
			return swapped[n.ID]
		}
		return nil
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pipeline
	if want := []string{"a", "b", "s1", "k1", "k2"}; !slices.Equal(asked, want) {
		t.Errorf("asked for %v, want %v", asked, want)
	}
	// b, s1 and k2 are built from their Specs; a and k1 are not.
	if o := opened.Load(); o != 3 {
		t.Errorf("built %d components from Specs, want 3", o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(swapped["k1"].got)
	slices.Sort(got)
	// a emits one record instead of two; b still two: all upper-cased.
	if want := []string{"RA", "RA", "RB"}; !slices.Equal(got, want) {
		t.Errorf("replaced sink k1 got %v, want %v", got, want)
	}
}

func TestReplaceRefusesTheWrongKind(t *testing.T) {
	resetFakes()
	_, err := Compile("testdata/good/fanout.yaml", Options{Replace: func(n Node) any {
		if n.ID == "k1" {
			return &gen{id: "k1"} // a source where a sink belongs
		}
		return nil
	}}, nil)
	if err == nil || !strings.Contains(err.Error(), "sinks.k1: sink type \"test_sink\" built a *config.gen, which is not a flow.Sink") {
		t.Fatalf("want a wrong-kind error for k1, got %v", err)
	}
	// Whatever was built is closed on the failure, the replacement too.
	if o, c := opened.Load(), closed.Load(); c != o+1 {
		t.Errorf("opened %d from Specs, closed %d; want the replacement closed as well", o, c)
	}
}
