package main

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example runs and prints exactly the multiples of three up to 100.
func TestEmbedExample(t *testing.T) {
	out, err := exec.Command("go", "run", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 3; i <= 100; i += 3 {
		want = append(want, strconv.Itoa(i))
	}
	if got := strings.Fields(string(out)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
}
