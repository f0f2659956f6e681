package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build makes a component the way the config loader would: declared
// defaults, then vals, sizes read from their text ("100KiB") or number,
// relative paths against dir.
func build(t *testing.T, kind flow.Kind, typ, dir string, vals map[string]any) (any, error) {
	t.Helper()
	spec, ok := registry.Lookup(kind, typ)
	if !ok {
		t.Fatalf("%s %s is not registered", kind, typ)
	}
	v := map[string]any{}
	for _, f := range spec.Fields {
		if f.Default != nil {
			v[f.Name] = f.Default
		}
	}
	for k, x := range vals {
		v[k] = x
	}
	for _, f := range spec.Fields {
		if f.Type != registry.Size {
			continue
		}
		switch x := v[f.Name].(type) {
		case int:
			v[f.Name] = int64(x)
		case string:
			n, err := registry.ParseSize(x)
			if err != nil {
				return nil, registry.FieldErr(f.Name, err)
			}
			v[f.Name] = n
		}
	}
	env := &registry.Env{Logger: slog.New(slog.DiscardHandler), BaseDir: dir}
	return spec.Build(&registry.Conf{ID: typ, Kind: kind.String(), Type: typ, Values: v, Env: env})
}

func mustBuild(t *testing.T, kind flow.Kind, typ, dir string, vals map[string]any) any {
	t.Helper()
	c, err := build(t, kind, typ, dir, vals)
	if err != nil {
		t.Fatalf("build %s %s: %v", kind, typ, err)
	}
	return c
}

// recorder is a sink keeping copies of what it got.
type recorder struct {
	mu   sync.Mutex
	recs []flow.Record
}

func (r *recorder) Write(ctx context.Context, recs []flow.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		rec.Value = bytes.Clone(rec.Value)
		r.recs = append(r.recs, rec)
	}
	return nil
}

func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.recs))
	for i, rec := range r.recs {
		out[i] = string(rec.Value)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func runPipeline(src flow.Source, sink flow.Sink, opts ...flow.NodeOption) error {
	return flow.New("t").Source("in", src).Sink("out", sink, append(opts, flow.Inputs("in"))...).Run(context.Background())
}

func TestRoundTripIsExact(t *testing.T) {
	dir := t.TempDir()
	var in bytes.Buffer
	for i := range 3000 {
		switch {
		case i%100 == 7:
			in.WriteString("") // empty line
		case i%100 == 8:
			in.WriteString("crlf keeps its \r")
		case i == 1500:
			in.WriteString(strings.Repeat("long ", 40000)) // spans several read buffers
		default:
			fmt.Fprintf(&in, `{"n":%d,"s":"héllo\tworld"}`, i)
		}
		in.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	src := mustBuild(t, flow.KindSource, "file", dir, map[string]any{"path": "in.txt", "batch": 100}).(*Source)
	sink := mustBuild(t, flow.KindSink, "file", dir, map[string]any{"path": "out.txt"}).(*Sink)
	if err := runPipeline(src, sink); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, in.Bytes()) {
		t.Fatalf("output differs from input: %d bytes vs %d", len(got), in.Len())
	}
	if src.Acked() != 3000 || sink.Written() != 3000 {
		t.Fatalf("acked %d written %d, want 3000", src.Acked(), sink.Written())
	}
}

func TestSourceOriginsAndUnterminatedLastLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a\n\nc\nlast"), 0o644)
	src := mustBuild(t, flow.KindSource, "file", dir, map[string]any{"path": "in.txt"}).(flow.Source)
	sink := &recorder{}
	if err := runPipeline(src, sink); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%q", sink.values()); got != `["a" "" "c" "last"]` {
		t.Fatalf("values %s", got)
	}
	for i, r := range sink.recs {
		if r.Origin.Source != "file" || r.Origin.Offset != int64(i+1) {
			t.Fatalf("record %d origin %+v, want offset %d (line number)", i, r.Origin, i+1)
		}
	}
}

func TestLineTooLongIsAClearError(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		maxLine any
		long    int
	}{
		{"short", 10, 11},
		{"spanning buffers", "100KiB", 200 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := "ok\nfine\n" + strings.Repeat("x", c.long) + "\nnever\n"
			os.WriteFile(filepath.Join(dir, "in.txt"), []byte(data), 0o644)
			src := mustBuild(t, flow.KindSource, "file", dir, map[string]any{"path": "in.txt", "max_line": c.maxLine}).(flow.Source)
			sink := &recorder{}
			err := runPipeline(src, sink)
			want := filepath.Join(dir, "in.txt") + ":3: line too long: longer than max_line"
			if !errors.Is(err, ErrLineTooLong) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one containing %q", err, want)
			}
			if got := fmt.Sprint(sink.values()); got != "[ok fine]" {
				t.Fatalf("lines before the long one: %s, want [ok fine]", got)
			}
		})
	}
}

func TestFollowReadsAppendedLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.txt")
	os.WriteFile(path, []byte("1\n2\n"), 0o644)
	src := mustBuild(t, flow.KindSource, "file", dir, map[string]any{"path": "log.txt", "follow": true}).(flow.Source)
	sink := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- flow.New("t").Source("in", src).Sink("out", sink, flow.Inputs("in")).Run(ctx)
	}()
	waitFor(t, "the first two lines", func() bool { return len(sink.values()) == 2 })
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Whether the reader sees "par" alone depends on timing here;
	// TestPartialLineHeldBack covers that case deterministically.
	f.WriteString("par")
	f.WriteString("tial\n3\n")
	waitFor(t, "the appended lines", func() bool { return len(sink.values()) == 4 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	if got := fmt.Sprint(sink.values()); got != "[1 2 partial 3]" {
		t.Fatalf("values %s, want [1 2 partial 3]", got)
	}
}

func TestStdinEmitsLinesAsTheyComeAndEndsAtEOF(t *testing.T) {
	r, w := io.Pipe()
	src := newStdin("in", r, registry.Defaults((*lineConfig).fields), slog.New(slog.DiscardHandler))
	sink := &recorder{}
	done := make(chan error, 1)
	go func() { done <- runPipeline(src, sink) }()
	io.WriteString(w, "one\ntwo\n")
	// Two lines, far from a full batch: they must not wait for more.
	waitFor(t, "lines before the batch fills", func() bool { return len(sink.values()) == 2 })
	io.WriteString(w, "three")
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sink.values()); got != "[one two three]" {
		t.Fatalf("values %s", got)
	}
	if src.Acked() != 3 {
		t.Fatalf("acked %d, want 3", src.Acked())
	}
}

func TestStdinStopsOnCancelWhileReadBlocks(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close() // releases the reading goroutine for goleak
	src := newStdin("in", r, registry.Defaults((*lineConfig).fields), slog.New(slog.DiscardHandler))
	sink := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- flow.New("t").Source("in", src).Sink("out", sink, flow.Inputs("in")).Run(ctx)
	}()
	io.WriteString(w, "a\n")
	waitFor(t, "the first line", func() bool { return len(sink.values()) == 1 })
	cancel() // the reader is now blocked in Read
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	if src.Acked() != 1 {
		t.Fatalf("acked %d, want 1", src.Acked())
	}
}

func TestSinkModes(t *testing.T) {
	for _, c := range []struct{ mode, want string }{
		{"truncate", "new\n"},
		{"append", "old\nnew\n"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "out.txt")
		os.WriteFile(path, []byte("old\n"), 0o644)
		sink := mustBuild(t, flow.KindSink, "file", dir, map[string]any{"path": path, "mode": c.mode}).(*Sink)
		if got, _ := os.ReadFile(path); string(got) != "old\n" {
			t.Fatalf("%s: Build touched the file: %q", c.mode, got)
		}
		if err := sink.Write(context.Background(), []flow.Record{{Value: []byte("new")}}); err != nil {
			t.Fatal(err)
		}
		// Durable before Write returned: readable without Close.
		if got, _ := os.ReadFile(path); string(got) != c.want {
			t.Fatalf("%s: file %q, want %q", c.mode, got, c.want)
		}
		if err := sink.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildDoesNotCreateTheOutput(t *testing.T) {
	dir := t.TempDir()
	sink := mustBuild(t, flow.KindSink, "file", dir, map[string]any{"path": "out.txt"}).(*Sink)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("output exists after Build and Close without writes (stat err %v)", err)
	}
}

func TestBadPathsAreFieldErrors(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	cases := []struct {
		kind flow.Kind
		path string
		want string
	}{
		{flow.KindSource, "missing.txt", "no such file or directory"},
		{flow.KindSource, "sub", "is not a regular file"},
		{flow.KindSource, "", "is empty"},
		{flow.KindSink, "nodir/out.txt", "directory of"},
		{flow.KindSink, "sub", "is a directory"},
	}
	for _, c := range cases {
		_, err := build(t, c.kind, "file", dir, map[string]any{"path": c.path})
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Field != "path" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s path %q: err = %v, want a path error containing %q", c.kind, c.path, err, c.want)
		}
	}
	_, err := build(t, flow.KindSource, "stdin", dir, map[string]any{"max_line": "12 parsecs"})
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Field != "max_line" {
		t.Errorf("bad max_line: err = %v, want a max_line field error", err)
	}
}

// A failing write reaches Run as an error naming the file and the cause.
func TestWriteFailureNamesTheFile(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	sink := mustBuild(t, flow.KindSink, "file", "", map[string]any{"path": "/dev/full", "fsync": false}).(flow.Sink)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("x\n"), 0o644)
	src := mustBuild(t, flow.KindSource, "file", dir, map[string]any{"path": "in.txt"}).(*Source)
	err := runPipeline(src, sink)
	if err == nil || !strings.Contains(err.Error(), "write /dev/full: no space left on device") {
		t.Fatalf("err = %v, want the write failure", err)
	}
	if src.Acked() != 0 || src.count.failed.Load() != 1 {
		t.Fatalf("acked %d failed %d, want the line failed, not acked", src.Acked(), src.count.failed.Load())
	}
}

// Parallel sink workers must not interleave bytes of different lines.
func TestParallelWritesKeepLinesWhole(t *testing.T) {
	dir := t.TempDir()
	var in bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&in, "line-%06d-%s\n", i, strings.Repeat("z", i%50))
	}
	os.WriteFile(filepath.Join(dir, "in.txt"), in.Bytes(), 0o644)
	src := mustBuild(t, flow.KindSource, "file", dir, map[string]any{"path": "in.txt", "batch": 10}).(flow.Source)
	sink := mustBuild(t, flow.KindSink, "file", dir, map[string]any{"path": "out.txt", "fsync": false}).(flow.Sink)
	if err := runPipeline(src, sink, flow.Parallelism(4, flow.OrderNone)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out.txt"))
	want := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(in.String(), "\n"), "\n") {
		want[l] = true
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines written, want %d", len(lines), len(want))
	}
	for _, l := range lines {
		if !want[l] {
			t.Fatalf("line %q was never read: writes interleaved", l)
		}
		delete(want, l)
	}
}

func TestStdoutSink(t *testing.T) {
	var out bytes.Buffer
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a\nb\n"), 0o644)
	src := mustBuild(t, flow.KindSource, "file", dir, map[string]any{"path": "in.txt"}).(flow.Source)
	if err := runPipeline(src, newStdout(&out)); err != nil {
		t.Fatal(err)
	}
	if out.String() != "a\nb\n" {
		t.Fatalf("stdout got %q", out.String())
	}
	if _, err := build(t, flow.KindSink, "stdout", "", nil); err != nil {
		t.Fatalf("stdout sink does not build: %v", err)
	}
}

// script is a reader returning one chunk per Read, then io.EOF once per
// gap, the way a file being appended to reads.
type script struct{ chunks []string }

func (s *script) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	if c == "" {
		return 0, io.EOF
	}
	return copy(p, c), nil
}

func TestPartialLineHeldBack(t *testing.T) {
	lr := newLineReader(&script{chunks: []string{"a\npar", "", "tial\n"}}, "f", "src", 100)
	lr.keepPartial = true
	var got []string
	for range 4 {
		line, err := lr.readLine()
		if err != nil {
			got = append(got, err.Error())
			continue
		}
		got = append(got, string(line))
	}
	if s := fmt.Sprintf("%q", got); s != `["a" "EOF" "partial" "EOF"]` {
		t.Fatalf("reads %s, want a, EOF (partial held), partial, EOF", s)
	}
	if lr.lines != 2 {
		t.Fatalf("counted %d lines, want 2", lr.lines)
	}
}

// A write stuck in the kernel (a FIFO nobody reads) must not hang Close,
// which runs under the engine's shutdown deadline.
func TestCloseGivesUpOnAStuckWrite(t *testing.T) {
	sink := mustBuild(t, flow.KindSink, "file", t.TempDir(), map[string]any{"path": "out.txt"}).(*Sink)
	if err := acquire(context.Background(), sink.lock); err != nil { // what a stuck Write holds
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := sink.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "a write is still in progress") {
		t.Fatalf("Close = %v, want it to give up naming the stuck write", err)
	}
	release(sink.lock)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatalf("Close once the write ended: %v", err)
	}
}
