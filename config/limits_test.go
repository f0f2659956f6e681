package config

import (
	"slices"
	"strings"
	"testing"
)

// Values validation used to accept and the run could not survive (issue
// 9): each is refused at its line and column, naming the range.
func TestNumbersOutOfRangeAreRefusedWhereWritten(t *testing.T) {
	path := writeFile(t, `settings:
  buffer: 4611686018427387904
  drain_timeout: 2h
  on_error: {retries: 1001, backoff: 90m, timeout: -1s}
sources:
  numbers: {type: test_gen, count: 1001}
stages:
  shout: {type: test_upper, inputs: [numbers], expr: value, parallelism: 1000000000, buffer: 0}
  quiet: {type: test_upper, inputs: [shout], expr: value, parallelism: 257, buffer: 1048577}
sinks:
  out: {type: test_sink, inputs: [quiet], path: p, on_error: {timeout: 25h}, parallelism: -1}
`)
	resetFakes()
	err := check(path, Options{}, nil)
	want := []string{
		path + `:2:11: settings.buffer: must be between 1 and 1048576, got 4611686018427387904`,
		path + `:3:18: settings.drain_timeout: must be between 100ms and 1h, got 2h`,
		path + `:4:23: settings.on_error.retries: must be between 0 and 1000, got 1001`,
		path + `:4:38: settings.on_error.backoff: must be between 0s and 1h, got 1h30m`,
		path + `:4:52: settings.on_error.timeout: must not be negative, got -1s`,
		path + `:6:36: sources.numbers.count: must be between 0 and 1000, got 1001`,
		path + `:8:74: stages.shout.parallelism: must be between 1 and 256, got 1000000000`,
		path + `:8:94: stages.shout.buffer: must be between 1 and 1048576, got 0`,
		path + `:9:72: stages.quiet.parallelism: must be between 1 and 256, got 257`,
		path + `:9:85: stages.quiet.buffer: must be between 1 and 1048576, got 1048577`,
		path + `:11:72: sinks.out.on_error.timeout: must be between 0s and 24h, got 25h`,
		path + `:11:91: sinks.out.parallelism: must be between 1 and 256, got -1`,
	}
	if got := lines(err); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if opened.Load() != closed.Load() {
		t.Errorf("opened %d components, closed %d", opened.Load(), closed.Load())
	}
}

// The ends of each range are in it.
func TestNumbersAtTheEndsOfTheirRangeAreAccepted(t *testing.T) {
	path := writeFile(t, `settings:
  buffer: 1048576
  drain_timeout: 100ms
  on_error: {retries: 1000, backoff: 1h, max_backoff: 0s}
sources:
  numbers: {type: test_gen, count: 0}
stages:
  shout: {type: test_upper, inputs: [numbers], expr: value, parallelism: 256, buffer: 1, on_error: {action: skip, timeout: 24h}}
sinks:
  out: {type: test_sink, inputs: [shout], path: p, parallelism: 1}
`)
	resetFakes()
	if err := check(path, Options{}, nil); err != nil {
		t.Fatal(err)
	}
}

// Through --set and the environment, the same ranges hold.
func TestOverriddenNumbersAreRangeChecked(t *testing.T) {
	path := writeFile(t, pipeline)
	_, err := Load(path, Options{
		Sets:    []string{"stages.shout.parallelism=1000000000"},
		Environ: []string{"SLUICE_SETTINGS__BUFFER=4611686018427387904"},
	})
	want := []string{
		`--set stages.shout.parallelism: stages.shout.parallelism: must be between 1 and 256, got 1000000000`,
		`env SLUICE_SETTINGS__BUFFER: settings.buffer: must be between 1 and 1048576, got 4611686018427387904`,
	}
	if got := lines(err); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
