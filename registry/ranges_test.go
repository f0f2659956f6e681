package registry

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRangeText(t *testing.T) {
	for _, c := range []struct {
		f    Field
		want string
	}{
		{Field{Type: Int, Min: ptr(1), Max: ptr(256)}, "1–256"},
		{Field{Type: Int, Min: ptr(0)}, "at least 0"},
		{Field{Type: Float, Min: ptr(0.001), Max: ptr(1e9)}, "0.001–1000000000"},
		{Field{Type: Size, Min: ptr(1), Max: ptr(1 << 30)}, "1B–1GiB"},
		{Field{Type: Size, Min: ptr(1e6), Max: ptr(2e9)}, "1MB–2GB"},
		{Field{Type: Duration, MaxDuration: time.Hour}, "0s–1h"},
		{Field{Type: Duration, MinDuration: time.Millisecond, MaxDuration: 720 * time.Hour}, "1ms–720h"},
		{Field{Type: Duration, MinDuration: 90 * time.Second}, "at least 1m30s"},
		{Field{Type: Duration}, ""},
		{Field{Type: String}, ""},
	} {
		if got := c.f.RangeText(); got != c.want {
			t.Errorf("%+v: RangeText %q, want %q", c.f, got, c.want)
		}
	}
}

func TestCheckRange(t *testing.T) {
	parallelism := Field{Type: Int, Min: ptr(1), Max: ptr(256)}
	rate := Field{Type: Float, Min: ptr(0), Max: ptr(1e9)}
	bytes := Field{Type: Size, Min: ptr(1), Max: ptr(1 << 30)}
	wait := Field{Type: Duration, MinDuration: time.Millisecond, MaxDuration: time.Hour}
	for _, c := range []struct {
		f    Field
		v    any
		want string
	}{
		{parallelism, 1, ""},
		{parallelism, 256, ""},
		{parallelism, 0, "must be between 1 and 256, got 0"},
		{parallelism, 1_000_000_000, "must be between 1 and 256, got 1000000000"},
		{parallelism, math.MaxInt, "must be between 1 and 256, got 9223372036854775807"},
		{rate, 0.0, ""},
		{rate, 1e9, ""},
		{rate, -0.5, "must be between 0 and 1000000000, got -0.5"},
		{rate, math.NaN(), "must be between 0 and 1000000000, got NaN"},
		{rate, math.Inf(1), "must be between 0 and 1000000000, got +Inf"},
		{bytes, int64(1 << 30), ""},
		{bytes, int64(0), "must be between 1B and 1GiB, got 0B"},
		{bytes, int64(2 << 30), "must be between 1B and 1GiB, got 2GiB"},
		{wait, time.Millisecond, ""},
		{wait, time.Hour, ""},
		{wait, time.Nanosecond, "must be between 1ms and 1h, got 1ns"},
		{wait, 1000 * time.Hour, "must be between 1ms and 1h, got 1000h"},
		{wait, -time.Second, "must not be negative, got -1s"},
		{Field{Type: Duration}, -time.Second, "must not be negative, got -1s"},
		{Field{Type: Duration}, time.Duration(math.MaxInt64), ""},
		{Field{Type: Int, Min: ptr(0)}, -1, "must be at least 0, got -1"},
		{Field{Type: Int, Max: ptr(9)}, 10, "must be at most 9, got 10"},
	} {
		got := ""
		if err := c.f.CheckRange(c.v); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s %v: %q, want %q", c.f.RangeText(), c.v, got, c.want)
		}
	}
}

// What FormatSize and FormatDuration write, ParseSize and
// time.ParseDuration read back: docs show ranges a user can copy.
func TestFormatsParseBack(t *testing.T) {
	for _, n := range []int64{0, 1, 7, 1000, 1024, 4096, 1e6, 1 << 20, 3 << 20, 1e9, 1 << 30, 2e9, 1<<40 + 1} {
		s := FormatSize(n)
		if got, err := ParseSize(s); err != nil || got != n {
			t.Errorf("FormatSize(%d) = %q, which parses as %d, %v", n, s, got, err)
		}
	}
	for _, d := range []time.Duration{0, 1, time.Millisecond, 1500 * time.Millisecond, time.Minute, 90 * time.Minute, 720 * time.Hour, time.Hour + time.Second} {
		s := FormatDuration(d)
		if got, err := time.ParseDuration(s); err != nil || got != d {
			t.Errorf("FormatDuration(%s) = %q, which parses as %s, %v", d, s, got, err)
		}
		if strings.HasSuffix(s, "m0s") || strings.HasSuffix(s, "h0m") {
			t.Errorf("FormatDuration(%s) = %q keeps a zero unit", d, s)
		}
	}
}

// One declaration feeds the schema (minimum, maximum and the range in
// the description) and the docs (a range column).
func TestRangesReachSchemaAndDocs(t *testing.T) {
	props := Schema()["properties"].(map[string]any)["settings"].(map[string]any)["properties"].(map[string]any)
	buffer := props["buffer"].(map[string]any)
	num := buffer["anyOf"].([]any)[0].(map[string]any)
	if num["minimum"] != 1.0 || num["maximum"] != float64(1<<20) {
		t.Errorf("settings.buffer schema %v: want minimum 1, maximum 1048576", num)
	}
	if d := buffer["description"].(string); !strings.HasSuffix(d, "(range 1–1048576)") {
		t.Errorf("settings.buffer description %q lacks the range", d)
	}
	drain := props["drain_timeout"].(map[string]any)
	if d := drain["description"].(string); !strings.HasSuffix(d, "(range 100ms–1h)") {
		t.Errorf("settings.drain_timeout description %q lacks the range", d)
	}
	var b bytes.Buffer
	if err := WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{
		"| `buffer` | int | `4096` | 1–1048576 |",
		"| `drain_timeout` | duration | `30s` | 100ms–1h |",
		"| `parallelism` | int | `1` | 1–256 |",
		"| `on_error.retries` | int | `0` | 0–1000 |",
	} {
		if !strings.Contains(b.String(), row) {
			t.Errorf("docs lack the row %q", row)
		}
	}
}
