package registry

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Numeric reports whether f takes a number: an Int, Float, Duration or
// Size. Each such field of a registered component declares its range.
func (f Field) Numeric() bool {
	switch f.Type {
	case Int, Float, Duration, Size:
		return true
	}
	return false
}

// Bounded reports whether f declares both ends of its range (for a
// Duration, MaxDuration: below, zero is the natural floor).
func (f Field) Bounded() bool {
	if f.Type == Duration {
		return f.MaxDuration > 0
	}
	return f.Min != nil && f.Max != nil
}

// RangeText renders f's range as docs show it: "1–256", "1ms–1h",
// "1B–1GiB", "at least 0"; "" when f declares none.
func (f Field) RangeText() string {
	lo, hi := f.bounds()
	switch {
	case lo != "" && hi != "":
		return lo + "–" + hi
	case lo != "":
		return "at least " + lo
	case hi != "":
		return "at most " + hi
	}
	return ""
}

// bounds renders each end of f's range in f's own units ("" if open).
func (f Field) bounds() (lo, hi string) {
	switch f.Type {
	case Duration:
		if f.MinDuration > 0 || f.MaxDuration > 0 {
			lo = FormatDuration(f.MinDuration)
		}
		if f.MaxDuration > 0 {
			hi = FormatDuration(f.MaxDuration)
		}
		return lo, hi
	case Size:
		if f.Min != nil {
			lo = FormatSize(int64(*f.Min))
		}
		if f.Max != nil {
			hi = FormatSize(int64(*f.Max))
		}
		return lo, hi
	}
	if f.Min != nil {
		lo = formatNumber(*f.Min)
	}
	if f.Max != nil {
		hi = formatNumber(*f.Max)
	}
	return lo, hi
}

// CheckRange returns an error naming f's range when v, a value of f's
// type as the config loader produces it (int for Int, float64 for Float,
// int64 bytes for Size, time.Duration for Duration), lies outside it.
func (f Field) CheckRange(v any) error {
	var x float64
	var show string
	switch v := v.(type) {
	case int:
		x, show = float64(v), strconv.Itoa(v)
	case int64:
		x, show = float64(v), strconv.FormatInt(v, 10)
		if f.Type == Size {
			show = FormatSize(v)
		}
	case float64:
		x, show = v, formatNumber(v)
	case time.Duration:
		lo, hi := f.MinDuration, f.MaxDuration
		switch {
		case v < 0:
			return fmt.Errorf("must not be negative, got %s", FormatDuration(v))
		case v < lo || hi > 0 && v > hi:
			return rangeError(f, FormatDuration(v))
		}
		return nil
	default:
		return nil
	}
	if math.IsNaN(x) || f.Min != nil && x < *f.Min || f.Max != nil && x > *f.Max {
		return rangeError(f, show)
	}
	return nil
}

func rangeError(f Field, got string) error {
	lo, hi := f.bounds()
	switch {
	case lo != "" && hi != "":
		return fmt.Errorf("must be between %s and %s, got %s", lo, hi, got)
	case lo != "":
		return fmt.Errorf("must be at least %s, got %s", lo, got)
	}
	return fmt.Errorf("must be at most %s, got %s", hi, got)
}

func formatNumber(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

// FormatDuration renders d as ParseDuration reads it, without the zero
// units time.Duration's String adds: "720h", "1h30m", "1m", "250ms".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// FormatSize renders n bytes in the largest unit dividing it exactly, as
// ParseSize reads it: "1GiB", "2GB", "64KiB", "1000B" as "1KB", "7B".
func FormatSize(n int64) string {
	units := []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"GB", 1e9}, {"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"KB", 1e3}}
	for _, u := range units {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
