package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	"gopkg.in/yaml.v3"
)

// envPrefix starts every environment override. Only the variables naming a
// config section are overrides: SLUICE_PLUGIN_DIR, SLUICE_KAFKA_BROKERS and
// the like configure the process, not the pipeline.
const envPrefix = "SLUICE_"

var envSections = []string{"SETTINGS__", "SOURCES__", "STAGES__", "SINKS__"}

// layer merges the file's values with the environment's overrides, then the
// --set flags, later layers winning key by key; it records where each
// override came from so errors can name the variable or flag.
func (s *source) layer(file map[string]any, opts Options, errs *Errors) map[string]any {
	k := koanf.New(".")
	load := func(p koanf.Provider, origin string) {
		if err := k.Load(p, nil); err != nil {
			errs.add(Pos{File: s.file, Origin: origin}, "%v", err)
		}
	}
	load(provided(file), "")

	var envPaths []path
	load(env.Provider(".", env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return opts.Environ },
		TransformFunc: func(name, value string) (string, any) {
			p, ok := envPath(name)
			if !ok {
				return "", nil
			}
			if slices.Contains(p, "") || slices.ContainsFunc(p, func(seg string) bool { return strings.Contains(seg, ".") }) {
				errs.add(Pos{File: s.file, Origin: "env " + name}, "cannot name a config key: use __ between keys, as in SLUICE_STAGES__MY_STAGE__EXPR")
				return "", nil
			}
			v := parseValue(value)
			s.override(p, v, "env "+name, value)
			envPaths = append(envPaths, p)
			return p.String(), v
		},
	}), "env "+envPrefix+"*")
	s.checkEnvConflicts(envPaths, errs)

	for _, set := range opts.Sets {
		origin := "--set " + set
		key, value, ok := strings.Cut(set, "=")
		if !ok || key == "" {
			errs.add(Pos{File: s.file, Origin: origin}, "want path=value, as in --set settings.buffer=512")
			continue
		}
		p := path(strings.Split(key, "."))
		if slices.Contains(p, "") {
			errs.add(Pos{File: s.file, Origin: origin}, "%s is not a config path: want dot-separated keys, as in stages.even.expr", clip(key))
			continue
		}
		v := parseValue(value)
		s.override(p, v, "--set "+key, value)
		load(confmap.Provider(map[string]any{key: v}, "."), origin)
	}
	return k.Raw()
}

// envPath maps SLUICE_STAGES__EVEN__EXPR to stages.even.expr: "__" nests,
// names are lower-cased. ok is false for a variable that is not an
// override.
func envPath(name string) (p path, ok bool) {
	rest := strings.TrimPrefix(name, envPrefix)
	if rest != "NAME" && !slices.ContainsFunc(envSections, func(sec string) bool { return strings.HasPrefix(rest, sec) }) {
		return nil, false
	}
	return strings.Split(strings.ToLower(rest), "__"), true
}

// checkEnvConflicts rejects two variables where one names a value inside
// the other's (SLUICE_STAGES__X and SLUICE_STAGES__X__EXPR): the
// environment has no order to decide which wins.
func (s *source) checkEnvConflicts(ps []path, errs *Errors) {
	slices.SortFunc(ps, func(a, b path) int { return slices.Compare(a, b) })
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1], ps[i]
		if len(a) < len(b) && slices.Equal(a, b[:len(a)]) {
			errs.add(Pos{File: s.file, Origin: s.overrides[b.key()].origin}, "conflicts with %s, which sets the whole of %s", s.overrides[a.key()].origin, a)
		}
	}
}

// parseValue reads an override's text. Written as a flow list or mapping
// ([a, b] or {action: skip}) it is read as YAML, so that inputs=[a,b] is
// a list; anything else is the text as given, as a ${VAR} is: nothing
// typed in an override turns into null or loses a "#..." to a comment.
// A field that wants a number, a boolean or a duration reads the text as
// one (settings.buffer=10 is the integer 10). Text too long to be typed
// by hand (yaml.v3 checks mapping keys pairwise) stays text.
func parseValue(text string) any {
	trimmed := strings.TrimSpace(text)
	if len(text) > 64<<10 || !strings.HasPrefix(trimmed, "[") && !strings.HasPrefix(trimmed, "{") {
		return text
	}
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		return text
	}
	switch v.(type) {
	case []any, map[string]any:
		return v
	}
	return text
}

// override records the origin of the value set at p and of everything in
// it, and marks p's ancestors as created by it unless the file has them.
func (s *source) override(p path, v any, origin, text string) {
	for i := 1; i < len(p); i++ {
		k := p[:i].key()
		if _, ok := s.overrides[k]; !ok {
			s.overrides[k] = override{origin: origin, created: true}
		}
	}
	s.mark(p, v, origin)
	if _, isString := v.(string); !isString {
		// Keep what was typed: 1.10 is a version to a string field, not 1.1.
		if o := s.overrides[p.key()]; o.scalar {
			o.text = text
			s.overrides[p.key()] = o
		}
	}
}

func (s *source) mark(p path, v any, origin string) {
	o := override{origin: origin}
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			s.mark(p.child(k), c, origin)
		}
	case map[any]any:
		for k, c := range v {
			s.mark(p.child(fmt.Sprint(k)), c, origin)
		}
	case []any:
		for i, c := range v {
			s.mark(p.child(fmt.Sprint(i)), c, origin)
		}
	default:
		o.scalar = true
		if str, ok := v.(string); ok {
			o.text = str
		} else {
			o.text = fmt.Sprint(v)
		}
	}
	s.overrides[p.key()] = o
}

// provided hands koanf the file's values as they are: confmap would deep
// copy them first, and they are not used again.
type provided map[string]any

func (p provided) Read() (map[string]any, error) { return p, nil }

func (p provided) ReadBytes() ([]byte, error) {
	return nil, errors.New("config: provided has no bytes")
}
