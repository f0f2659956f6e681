package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procRunner is the go-plugin runner.Runner of one plugin process. sluice
// runs plugins itself rather than through go-plugin's default runner to
// own what that one leaves out: a process group killed as a whole, a
// parent-death signal, no stdin, an exit status to report, and stderr
// lines that cannot crash the host's log parser.
type procRunner struct {
	cmd    *exec.Cmd
	name   string
	stdout io.ReadCloser
	stderr io.ReadCloser

	pid    int
	exited chan struct{} // closed once the process was reaped
	mu     sync.Mutex
	status error // cmd.Wait's result

	tail *stderrTail // the last lines of stderr, for startFailure
}

// logBufferSize is go-plugin's PluginLogBufferSize and the sanitizer's
// line limit: the two must agree on what a whole line is.
const logBufferSize = 64 << 10

func newProcRunner(path string, args, env []string) (*procRunner, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	tail := &stderrTail{}
	return &procRunner{
		cmd:    cmd,
		name:   filepath.Base(path),
		stdout: stdout,
		stderr: &safeLog{src: stderr, r: bufio.NewReaderSize(stderr, logBufferSize), tail: tail},
		exited: make(chan struct{}),
		tail:   tail,
	}, nil
}

func (r *procRunner) Start(context.Context) error {
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.pid = r.cmd.Process.Pid
	return nil
}

// Wait is called once, by go-plugin, after stdout and stderr hit EOF.
func (r *procRunner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.mu.Lock()
	r.status = err
	r.mu.Unlock()
	close(r.exited)
	return err
}

// exitStatus describes how the process ended, once it has.
func (r *procRunner) exitStatus() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == nil {
		return "exited with status 0"
	}
	return r.status.Error()
}

// cleanExit reports whether the process ended with status 0.
func (r *procRunner) cleanExit() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status == nil
}

// killed reports whether the process ended by SIGKILL, which is what
// Kill sends.
func (r *procRunner) killed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ee *exec.ExitError
	if !errors.As(r.status, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// startFailure describes a process that did not complete its handshake:
// how it ended and the last lines of its stderr. go-plugin's own error
// says neither (its stderr went to the debug log only), and they are
// usually the reason: a missing library, a bad flag, a panic. It waits up
// to wait for the process to be reaped, which go-plugin does once stderr
// reached EOF, so the lines are all there. "" if the process never
// started.
func (r *procRunner) startFailure(wait time.Duration) string {
	if r.pid == 0 {
		return ""
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	var b strings.Builder
	select {
	case <-r.exited:
		if r.killed() {
			// go-plugin kills a plugin still up when the handshake failed
			// (a timeout, a stray line on stdout); its error says which.
			b.WriteString("The plugin was killed (" + r.exitStatus() + "), as sluice does when the handshake fails.")
		} else {
			status := r.exitStatus()
			if r.cleanExit() {
				status = "exit status 0"
			}
			b.WriteString("The plugin exited before its handshake: " + status + ".")
		}
	case <-t.C:
		b.WriteString("The plugin did not exit when killed.")
	}
	lines, cut := r.tail.lines()
	switch {
	case len(lines) == 0:
		b.WriteString(" It wrote nothing to stderr.")
	case cut:
		b.WriteString(" The last lines of its stderr:")
	default:
		b.WriteString(" Its stderr:")
	}
	for _, l := range lines {
		b.WriteString("\n    " + l)
	}
	return b.String()
}

// Kill SIGKILLs the whole process group.
func (r *procRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	_ = killGroup(r.pid)
	// Where there are no groups, or the leader left its group: the leader.
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *procRunner) Name() string          { return r.name }

func (r *procRunner) ID() string {
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

func (r *procRunner) Diagnose(context.Context) string {
	return fmt.Sprintf("The plugin %s did not complete the handshake. It must be an executable built for this machine "+
		"that calls sdk.Serve (or speaks go-plugin's gRPC handshake) and writes nothing to stdout before it. "+
		"Its environment holds only the node's env entries (the host's is not inherited).", r.cmd.Path)
}

func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// safeLog passes the plugin's stderr to go-plugin's log parser, defusing
// JSON lines that would make it panic: it type-asserts "@message",
// "@level" and "@timestamp" to strings, so a plugin printing
// {"@message": 1} would take the host down.
// It also keeps the last lines in tail, as the plugin wrote them.
type safeLog struct {
	src     io.ReadCloser
	r       *bufio.Reader
	pending []byte
	tail    *stderrTail
}

func (s *safeLog) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		line, err := s.r.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			// Longer than go-plugin's buffer: it will not parse it either.
			s.tail.add(line)
			s.pending = append(s.pending[:0], line...)
		case len(line) > 0:
			s.tail.add(line)
			s.pending = append(s.pending[:0], defuse(line)...)
		case err != nil:
			return 0, err
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func (s *safeLog) Close() error { return s.src.Close() }

// defuse rewrites a JSON log line whose hclog keys are not strings into a
// plain warning line.
func defuse(line []byte) []byte {
	t := bytes.TrimSpace(line)
	if len(t) == 0 || t[0] != '{' {
		return line
	}
	var m map[string]any
	if json.Unmarshal(t, &m) != nil {
		return line
	}
	for _, k := range []string{"@message", "@level", "@timestamp"} {
		if v, ok := m[k]; ok {
			if _, isString := v.(string); !isString {
				return append([]byte("[WARN] malformed plugin log line: "), line...)
			}
		}
	}
	return line
}

// Bounds of stderrTail: enough for an error message and a panic's first
// frames, not so much that the error drowns in it.
const (
	tailLines = 20
	tailBytes = 4 << 10
)

// stderrTail is a ring of the last lines a plugin wrote to stderr, at most
// tailLines lines and tailBytes bytes; a longer line keeps its start. The
// first line of a Go panic or fatal error is kept too once the ring moved
// past it: a stack trace's end says less than its first line.
type stderrTail struct {
	mu      sync.Mutex
	ring    [tailLines]string
	next    int   // where the next line goes
	n       int   // lines held
	size    int   // their bytes
	total   int64 // lines ever added
	panic   string
	panicAt int64 // panic's line number, counted as total is
}

func (t *stderrTail) add(line []byte) {
	line = bytes.TrimRight(line, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if len(line) > tailBytes {
		line = append(line[:tailBytes:tailBytes], " …"...)
	}
	l := strings.ToValidUTF8(string(line), "\uFFFD")
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.panic == "" && (strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ")) {
		t.panic, t.panicAt = l, t.total
	}
	if t.n == tailLines {
		t.drop()
	}
	t.ring[t.next] = l
	t.next = (t.next + 1) % tailLines
	t.n++
	t.size += len(l)
	t.total++
	for t.size > tailBytes && t.n > 1 {
		t.drop()
	}
}

// drop forgets the oldest line; t.mu is held.
func (t *stderrTail) drop() {
	i := (t.next - t.n + tailLines) % tailLines
	t.size -= len(t.ring[i])
	t.ring[i] = ""
	t.n--
}

// lines returns the lines held, oldest first, and whether older ones were
// dropped. A panic line dropped comes first, followed by "…".
func (t *stderrTail) lines() (lines []string, cut bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	oldest := t.total - int64(t.n)
	if t.panic != "" && t.panicAt < oldest {
		lines = append(lines, t.panic)
		if t.panicAt+1 < oldest {
			lines = append(lines, "…")
		}
	}
	for i := range t.n {
		lines = append(lines, t.ring[(t.next-t.n+i+tailLines)%tailLines])
	}
	return lines, oldest > 0
}
