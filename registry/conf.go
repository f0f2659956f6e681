package registry

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Conf is a node's validated config handed to Build. Values have already
// been checked against the Spec's Fields and defaults filled in, so the
// getters do not return errors: asking for an undeclared field is a
// programming error and returns the zero value.
type Conf struct {
	ID     string
	Kind   string
	Type   string
	Values map[string]any
	Env    *Env
}

// Logger returns the node's logger.
func (c *Conf) Logger() *slog.Logger {
	l := slog.Default()
	if c.Env != nil && c.Env.Logger != nil {
		l = c.Env.Logger
	}
	return l.With("node", c.ID)
}

// Has reports whether the field was set (or has a default).
func (c *Conf) Has(name string) bool { _, ok := c.Values[name]; return ok }

// String returns a string field.
func (c *Conf) String(name string) string { s, _ := c.Values[name].(string); return s }

// Bool returns a bool field.
func (c *Conf) Bool(name string) bool { b, _ := c.Values[name].(bool); return b }

// Int returns an int field.
func (c *Conf) Int(name string) int { return int(toInt64(c.Values[name])) }

// Float returns a float field.
func (c *Conf) Float(name string) float64 { return toFloat(c.Values[name]) }

// Duration returns a duration field.
func (c *Conf) Duration(name string) time.Duration {
	d, _ := c.Values[name].(time.Duration)
	return d
}

// Size returns a size field in bytes.
func (c *Conf) Size(name string) int64 {
	n, _ := c.Values[name].(int64)
	return n
}

// Strings returns a list-of-strings field.
func (c *Conf) Strings(name string) []string { return toStrings(c.Values[name]) }

// Map returns a map or object field as a raw map.
func (c *Conf) Map(name string) map[string]any { m, _ := c.Values[name].(map[string]any); return m }

// Object returns an object field as a Conf of its own.
func (c *Conf) Object(name string) *Conf {
	m, _ := c.Values[name].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return &Conf{ID: c.ID, Kind: c.Kind, Type: c.Type, Values: m, Env: c.Env}
}

// Raw returns a field as decoded from YAML.
func (c *Conf) Raw(name string) any { return c.Values[name] }

// ParseSize reads 1048576, "64KiB", "1MB", "512kb", "2 GiB". KB/MB/GB are
// decimal, KiB/MiB/GiB binary, matching what people mean on each.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(s[:i]), strings.ToLower(strings.TrimSpace(s[i:]))
	}
	if num == "" {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB)", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v", s, err)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "kib": 1 << 10,
		"m": 1e6, "mb": 1e6, "mib": 1 << 20,
		"g": 1e9, "gb": 1e9, "gib": 1 << 30,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (want B, KB, KiB, MB, MiB, GB, GiB)", s, unit)
	}
	v := f * mult
	if v < 0 || v > 1<<50 {
		return 0, fmt.Errorf("invalid size %q: out of range", s)
	}
	return int64(v), nil
}
