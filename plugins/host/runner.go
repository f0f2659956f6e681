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
	"sync"
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
	return &procRunner{
		cmd:    cmd,
		name:   filepath.Base(path),
		stdout: stdout,
		stderr: &safeLog{src: stderr, r: bufio.NewReaderSize(stderr, logBufferSize)},
		exited: make(chan struct{}),
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
type safeLog struct {
	src     io.ReadCloser
	r       *bufio.Reader
	pending []byte
}

func (s *safeLog) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		line, err := s.r.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			// Longer than go-plugin's buffer: it will not parse it either.
			s.pending = append(s.pending[:0], line...)
		case len(line) > 0:
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
