package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	_ "github.com/sluicedev/sluice/builtin"
	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Every setting a pipeline file accepts must act: a field that is
// accepted and then ignored lets a user believe something that is not so
// (a retry count on a window, a token on a listener that is off).
//
// TestEveryFieldHasAnEffect walks every registered component, every field
// it declares (nested ones too) and every common node field, and the
// settings block. For each it builds a small pipeline twice, once without
// the field and once with it set to a valid value other than its default,
// and demands one of:
//
//   - validation refuses the second, saying the field has "no effect"
//     there; or
//   - the two builds differ where it counts: the component the node's
//     Build made (compared structurally; see sameShape) or the engine
//     settings in effect for the node (flow.Pipeline.Settings, which drops
//     what would not act, such as retries on a stage the retry middleware
//     never wraps), or the pipeline's own settings.
//
// Fields whose effect cannot be seen that way are in noEffectCheck, each
// with the reason.

// noEffectCheck lists fields whose effect a build cannot show, with why.
// Keys are "kind type field" ("settings" for the settings block).
var noEffectCheck = map[string]string{
	// The HTTP listener is started by `sluice run` (cmd/sluice), not by the
	// pipeline; run's own tests cover these. Token and pprof without a
	// listener are refused (config testdata/bad/moot.yaml).
	"settings http.listen": "read by cmd/sluice run, not the pipeline",
	"settings http.token":  "read by cmd/sluice run, not the pipeline",
	"settings http.pprof":  "read by cmd/sluice run, not the pipeline",
}

// sample is the value a field is set to. with are other keys set in both
// builds, giving the field a context where it can act (a backoff needs
// retries); a with that the type refuses on its own is dropped. also are
// keys set (nil: removed) along with the field, for fields that only come
// in pairs (a client certificate and its key).
type sample struct {
	value any
	with  map[string]any
	also  map[string]any
}

// samples are values for fields the generic choice (sampleFor) cannot
// make valid, by "kind type field"; "kind * field" applies to every type
// of the kind.
func samples(t *testing.T, dir, plugin string) map[string]sample {
	ca, cert, key := testCert(t, dir)
	tlsOn := map[string]any{"tls": map[string]any{"enabled": true}}
	saslOn := map[string]any{"sasl": map[string]any{"mechanism": "plain", "user": "u", "password": "p"}}
	retrying := map[string]any{"on_error": map[string]any{"retries": 2}}
	deadLetter := map[string]any{"on_error": map[string]any{"action": "dead_letter", "dead_letter": "out"}}
	other := copyFile(t, plugin, filepath.Join(dir, "passthrough-copy"))
	s := map[string]sample{
		"stage * on_error.backoff":        {value: "3s", with: retrying},
		"sink * on_error.backoff":         {value: "3s", with: retrying},
		"stage * on_error.max_backoff":    {value: "3s", with: retrying},
		"sink * on_error.max_backoff":     {value: "3s", with: retrying},
		"stage * on_error.dead_letter":    {value: "spare", with: deadLetter},
		"sink * on_error.dead_letter":     {value: "spare", with: deadLetter},
		"stage * ordering":                {value: "key", with: map[string]any{"parallelism": 2}},
		"sink * ordering":                 {value: "key", with: map[string]any{"parallelism": 2}},
		"stage window changelog_prefix":   {value: "orders-v2", with: map[string]any{"state": "changelog"}},
		"stage dedupe changelog_prefix":   {value: "orders-v2", with: map[string]any{"state": "changelog"}},
		"settings * on_error.backoff":     {value: "3s", with: retrying},
		"settings * on_error.max_backoff": {value: "3s", with: retrying},
		"settings * on_error.dead_letter": {value: "spare", with: deadLetter},

		"stage window kind":             {value: "sliding", also: map[string]any{"slide": "500ms"}},
		"stage window slide":            {value: "2s", with: map[string]any{"kind": "sliding", "size": "4s", "slide": "1s"}},
		"stage window gap":              {value: "3s", with: map[string]any{"kind": "session", "size": nil, "gap": "1s"}},
		"stage window timestamp":        {value: "value.ts", with: map[string]any{"time": "event"}},
		"stage window allowed_lateness": {value: "5s", with: map[string]any{"time": "event"}},
		"stage window aggregate.op":     {value: "sum", also: map[string]any{"aggregate": map[string]any{"expr": "value.amount"}}},
		"stage window aggregate.expr":   {value: "value.amount", with: map[string]any{"aggregate": map[string]any{"op": "sum", "expr": "value.price"}}},
		"stage window max_collect":      {value: 500, with: map[string]any{"aggregate": map[string]any{"op": "collect", "expr": "value"}}},
		"stage plugin plugin":           {value: other},
		"stage plugin sha256":           {value: sha256Hex(t, plugin)},
		"stage plugin config":           {value: map[string]any{"suffix": "!"}},

		"source kafka rebalance_timeout": {value: "45s"},
		"source kafka session_timeout":   {value: "45s"},
		"sink kafka topic":               {value: "other"},
		"sink kafka topic_expr":          {value: `"t-" + key`, also: map[string]any{"topic": nil}},
		"sink kafka backoff":             {value: "300ms"},
		"sink file path":                 {value: "other.out"},
		"source file path":               {value: "other.in"},
	}
	for _, kind := range []string{"source", "sink"} {
		s[kind+" kafka tls.ca"] = sample{value: ca, with: tlsOn}
		s[kind+" kafka tls.cert"] = sample{value: cert, with: tlsOn, also: map[string]any{"tls": map[string]any{"key": key}}}
		s[kind+" kafka tls.key"] = sample{value: key, with: tlsOn, also: map[string]any{"tls": map[string]any{"cert": cert}}}
		s[kind+" kafka tls.insecure_skip_verify"] = sample{value: true, with: tlsOn}
		s[kind+" kafka sasl.user"] = sample{value: "v", with: saslOn}
		s[kind+" kafka sasl.password"] = sample{value: "q", with: saslOn}
		s[kind+" kafka sasl.mechanism"] = sample{value: "scram-sha-256", also: map[string]any{"sasl": map[string]any{"user": "u", "password": "p"}}}
	}
	return s
}

// bases are the smallest valid configs of the built-in types: the
// required fields. A type missing here is tried with samples of its
// required fields.
func bases(plugin string) map[string]map[string]any {
	return map[string]map[string]any{
		"source kafka":   {"brokers": []any{"127.0.0.1:1"}, "topics": []any{"t"}, "group": "g"},
		"source file":    {"path": "in.txt"},
		"stage filter":   {"expr": "true"},
		"stage map":      {"value": "value"},
		"stage dedupe":   {"key": "key"},
		"stage window":   {"size": "1s"},
		"stage plugin":   {"plugin": plugin},
		"stage throttle": {"rate": 100},
		"sink file":      {"path": "out.txt"},
		"sink kafka":     {"brokers": []any{"127.0.0.1:1"}, "topic": "t"},
	}
}

func TestEveryFieldHasAnEffect(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"in.txt", "other.in"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	plugin := buildPlugin(t, dir)
	w := &walker{t: t, dir: dir, samples: samples(t, dir, plugin), bases: bases(plugin), seen: map[string]bool{}, used: map[string]bool{}}
	for _, spec := range registry.All() {
		if strings.HasPrefix(spec.Type, "test_") {
			continue // registered by this package's own tests
		}
		fields := slices.DeleteFunc(registry.CommonFields(spec.Kind), func(f registry.Field) bool {
			return f.Name == "type" || f.Name == "inputs" // the graph's shape, checked as such
		})
		w.fields(spec, append(fields, spec.Fields...), nil)
	}
	w.fields(registry.Spec{Type: "settings"}, registry.SettingsFields, nil)
	for key := range noEffectCheck {
		if !w.seen[key] {
			t.Errorf("noEffectCheck names %q, which no component declares", key)
		}
	}
	for key := range w.samples {
		if !w.used[key] {
			t.Errorf("samples has %q, which no field used", key)
		}
	}
}

type walker struct {
	t       *testing.T
	dir     string
	samples map[string]sample
	bases   map[string]map[string]any
	seen    map[string]bool // "kind type field" walked
	used    map[string]bool // samples keys used
}

func kindName(s registry.Spec) string {
	if s.Type == "settings" {
		return "settings"
	}
	return s.Kind.String()
}

// fields checks each of fields (below the dotted prefix) of spec.
func (w *walker) fields(spec registry.Spec, fields []registry.Field, prefix []string) {
	for _, f := range fields {
		at := append(slices.Clip(prefix), f.Name)
		name := strings.Join(at, ".")
		key := kindName(spec) + " " + spec.Type + " " + name
		if spec.Type == "settings" {
			key = "settings " + name
		}
		w.seen[key] = true
		if f.Type == registry.Object && len(f.Fields) > 0 {
			w.fields(spec, f.Fields, at)
			continue
		}
		if why, ok := noEffectCheck[key]; ok {
			w.t.Logf("%s: not checked: %s", key, why)
			continue
		}
		w.t.Run(strings.ReplaceAll(key, " ", "/"), func(t *testing.T) { w.check(t, spec, f, at) })
	}
}

func (w *walker) sampleFor(spec registry.Spec, f registry.Field, at []string) (sample, bool) {
	name := strings.Join(at, ".")
	for _, k := range []string{kindName(spec) + " " + spec.Type + " " + name, kindName(spec) + " * " + name} {
		if s, ok := w.samples[k]; ok {
			w.used[k] = true
			return s, true
		}
	}
	def := f.Default
	differs := func(v any) bool { return v != nil && fmt.Sprint(v) != fmt.Sprint(def) }
	if len(f.Enum) > 0 {
		for _, e := range f.Enum {
			if differs(e) {
				return sample{value: e}, true
			}
		}
	}
	if differs(f.Example) {
		return sample{value: f.Example}, true
	}
	switch f.Type {
	case registry.Int:
		n := 7
		if d, ok := def.(int); ok {
			n = d + 3
		}
		return sample{value: n}, true
	case registry.Float:
		return sample{value: 7.5}, true
	case registry.Bool:
		b, _ := def.(bool)
		return sample{value: !b}, true
	case registry.Duration:
		if fmt.Sprint(def) == "7s" {
			return sample{value: "8s"}, true
		}
		return sample{value: "7s"}, true
	case registry.Size:
		return sample{value: "3KiB"}, true
	case registry.String:
		return sample{value: "sample"}, true
	case registry.List:
		if f.Elem == registry.String || f.Elem == "" {
			return sample{value: []any{"a", "b"}}, true
		}
	case registry.Map, registry.Any:
		return sample{value: map[string]any{"k": "v"}}, true
	}
	return sample{}, false
}

// check builds the pipeline without and with the field, and demands a
// refusal or a difference.
func (w *walker) check(t *testing.T, spec registry.Spec, f registry.Field, at []string) {
	s, ok := w.sampleFor(spec, f, at)
	if !ok {
		t.Fatalf("no sample value for a %s field: add one to samples", f.Type)
	}
	base := map[string]any{}
	if spec.Type != "settings" {
		maps := w.bases[kindName(spec)+" "+spec.Type]
		for k, v := range maps {
			base[k] = v
		}
	}
	withCtx := merge(base, s.with)
	a, aErr := w.build(t, spec, withCtx)
	if aErr != nil && s.with != nil {
		t.Logf("context %v refused (%v); trying without it", s.with, aErr)
		withCtx = base
		a, aErr = w.build(t, spec, withCtx)
	}
	if aErr != nil {
		t.Fatalf("the base pipeline does not build: %v", aErr)
	}
	name := strings.Join(at, ".")
	b, bErr := w.build(t, spec, merge(merge(withCtx, nested(at, s.value)), s.also))
	if bErr != nil {
		for _, line := range strings.Split(bErr.Error(), "\n") {
			if strings.Contains(line, name+" has no effect") || strings.Contains(line, at[0]+" has no effect") {
				t.Logf("refused: %s", line)
				return
			}
		}
		t.Fatalf("setting %s to %v fails for another reason (fix the sample): %v", name, s.value, bErr)
	}
	// Two builds of one config must look the same, or a difference would
	// prove nothing.
	if again, err := w.build(t, spec, withCtx); err != nil || !sameShape(reflect.ValueOf(a.settings), reflect.ValueOf(again.settings)) || !sameShape(a.component, again.component) {
		t.Fatalf("two builds of the same config differ (%v): extend view to compare what the config decides", err)
	}
	if sameShape(reflect.ValueOf(a.settings), reflect.ValueOf(b.settings)) && sameShape(a.component, b.component) {
		t.Errorf("%s %s: %s: %v is accepted and changes nothing: make it act, or refuse it at validation", kindName(spec), spec.Type, name, s.value)
	}
}

// built is what a build shows: the pipeline's settings, and for the node
// under test its component and engine settings.
type built struct {
	settings  pipelineSettings
	component reflect.Value // of the node under test; see view
}

type pipelineSettings struct {
	DrainTimeout time.Duration
	Nodes        map[string]flow.NodeSettings
}

// build makes the test pipeline around the node "x" of spec's type
// configured with node (or, for settings, with node as the settings),
// returns what it shows and closes what it built.
func (w *walker) build(t *testing.T, spec registry.Spec, node map[string]any) (built, error) {
	t.Helper()
	gen := map[string]any{"type": "generate", "count": 1}
	out := func(in string) map[string]any { return map[string]any{"type": "discard", "inputs": []any{in}} }
	spare := map[string]any{"type": "discard", "inputs": []any{"gen"}}
	doc := map[string]any{}
	x := merge(node, map[string]any{"type": spec.Type})
	switch {
	case spec.Type == "settings":
		doc["settings"] = node
		doc["sources"] = map[string]any{"gen": gen}
		doc["stages"] = map[string]any{"x": map[string]any{"type": "filter", "inputs": []any{"gen"}, "expr": "true"}}
		doc["sinks"] = map[string]any{"out": out("x"), "spare": spare}
	case spec.Kind == flow.KindSource:
		doc["sources"] = map[string]any{"x": x}
		doc["sinks"] = map[string]any{"out": out("x")}
	case spec.Kind == flow.KindStage:
		x["inputs"] = []any{"gen"}
		doc["sources"] = map[string]any{"gen": gen}
		doc["stages"] = map[string]any{"x": x}
		doc["sinks"] = map[string]any{"out": out("x"), "spare": spare}
	default:
		x["inputs"] = []any{"gen"}
		doc["sources"] = map[string]any{"gen": gen}
		doc["sinks"] = map[string]any{"x": x, "out": out("gen"), "spare": spare}
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(w.dir, "p.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := config.Compile(file, config.Options{}, &registry.Env{Logger: logger, PluginDirs: []string{w.dir}})
	if err != nil {
		return built{}, err
	}
	p := c.Pipeline
	res := built{settings: pipelineSettings{DrainTimeout: p.DrainTimeout(), Nodes: map[string]flow.NodeSettings{}}}
	for _, n := range p.Nodes() {
		res.settings.Nodes[n.ID], _ = p.Settings(n.ID)
	}
	if spec.Type != "settings" {
		res.component = view(p.Component("x"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range p.Nodes() {
		if c, ok := p.Component(n.ID).(flow.Closer); ok {
			if err := c.Close(ctx); err != nil {
				t.Errorf("close %s: %v", n.ID, err)
			}
		}
	}
	return res, nil
}

// view is the part of a component that its config decides. A plugin stage
// holds live processes (pids, sockets) that differ on every build; its
// configuration is what the fields set.
func view(c any) reflect.Value {
	v := reflect.ValueOf(c)
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct && v.Elem().Type().String() == "host.Stage" {
		return v.Elem().FieldByName("cfg")
	}
	return v
}

// sameShape compares two values structurally, as reflect.DeepEqual does,
// but reads functions by their code (a closure built twice from the same
// literal is the same), channels by their capacity and skips unsafe
// pointers: what a config can decide, not identities it cannot.
func sameShape(a, b reflect.Value) bool {
	return (&shapes{seen: map[[2]uintptr]bool{}}).eq(a, b)
}

type shapes struct{ seen map[[2]uintptr]bool }

func (s *shapes) eq(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		if a.Pointer() == b.Pointer() {
			return true
		}
		k := [2]uintptr{a.Pointer(), b.Pointer()}
		if s.seen[k] {
			return true
		}
		s.seen[k] = true
		return s.eq(a.Elem(), b.Elem())
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return s.eq(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !s.eq(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !s.eq(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		it := a.MapRange()
		for it.Next() {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !s.eq(it.Value(), bv) {
				return false
			}
		}
		return true
	case reflect.Func:
		return a.IsNil() == b.IsNil() && a.Pointer() == b.Pointer()
	case reflect.Chan:
		return a.IsNil() == b.IsNil() && a.Cap() == b.Cap()
	case reflect.UnsafePointer:
		return true
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	case reflect.Complex64, reflect.Complex128:
		return a.Complex() == b.Complex()
	case reflect.String:
		return a.String() == b.String()
	}
	return false
}

// merge returns a copy of a with b's keys laid over it, mappings merged
// key by key; a nil in b removes the key.
func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v == nil {
			delete(out, k)
			continue
		}
		am, aok := out[k].(map[string]any)
		bm, bok := v.(map[string]any)
		if aok && bok {
			out[k] = merge(am, bm)
			continue
		}
		out[k] = v
	}
	return out
}

// nested returns {at[0]: {at[1]: ... v}}.
func nested(at []string, v any) map[string]any {
	m := map[string]any{at[len(at)-1]: v}
	for i := len(at) - 2; i >= 0; i-- {
		m = map[string]any{at[i]: m}
	}
	return m
}

func copyFile(t *testing.T, from, to string) string {
	t.Helper()
	data, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, data, 0o700)
	}
	if err != nil {
		t.Fatal(err)
	}
	return to
}

func sha256Hex(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// buildPlugin builds the passthrough test plugin into dir.
func buildPlugin(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "passthrough")
	cmd := exec.Command("go", "build", "-o", bin, "../plugins/testdata/passthrough")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	return bin
}

// testCert writes a self-signed CA certificate, a client certificate and
// its key, for the TLS fields.
func testCert(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for p, data := range map[string][]byte{ca: certPEM, cert: certPEM, key: keyPEM} {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}
