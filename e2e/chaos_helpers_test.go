package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// The machinery of TestChaos (chaos_test.go): a seeded fault schedule,
// the sluice members of one consumer group, the faults themselves, and a
// record of every SIGTERM's outcome. Names carry a chaos prefix; the
// Kafka helpers (topics, workloads, offsets, kafkaScript) and the plugin
// helpers (pluginChildren, pluginZombie) are reused, not copied.

// chaosKind is one kind of fault.
type chaosKind int

const (
	chaosKillPlugin    chaosKind = iota // kill -9 plugin processes of a member, 1-4 in a row
	chaosKillMember                     // kill -9 a member, start a new one
	chaosTermMember                     // SIGTERM a member, start a new one at once
	chaosRestartBroker                  // kill -9 the broker, start it on the same data
)

func (k chaosKind) String() string {
	return [...]string{"kill -9 plugin", "kill -9 member", "SIGTERM member", "restart broker"}[k]
}

// chaosWeights draws the kinds: the cheap faults that part 1 of the issue
// is about come most often; a broker restart costs 15s to a minute of
// JVM start, so it is drawn least.
var chaosWeights = [...]int{chaosKillPlugin: 3, chaosKillMember: 2, chaosTermMember: 2, chaosRestartBroker: 1}

// chaosFault is one planned fault. Everything random about it comes from
// the seed; only when it lands (the progress it waits for) depends on
// timing.
type chaosFault struct {
	kind chaosKind
	// at is the share of the input the group must have committed before
	// the fault fires: faults land while records flow whatever the
	// machine's speed.
	at float64
	// pick chooses the target among the candidates (a member, a plugin
	// process) when the fault fires.
	pick float64
	// down is how long the broker stays dead before it is started again.
	down time.Duration
	// burst is how many plugin processes die in a row: the one picked,
	// then each one that replaces it, settle after it appeared (0: during
	// its handshake; later: once it serves).
	burst  int
	settle time.Duration
}

func (f chaosFault) String() string {
	s := fmt.Sprintf("%s at %.1f%% committed", f.kind, 100*f.at)
	switch f.kind {
	case chaosRestartBroker:
		s += fmt.Sprintf(", down %s", f.down)
	case chaosKillPlugin:
		s += fmt.Sprintf(", %d in a row", f.burst)
		if f.burst > 1 {
			s += fmt.Sprintf(", each %s after it started", f.settle)
		}
	}
	return s
}

// chaosSchedule plans n faults (n >= 6): every kind at least once, the
// rest drawn by chaosWeights, in random order, at stratified random
// shares of the input between 5% and 85%, so that even the last fault
// leaves records to copy. At most n/6 are broker restarts (drawn again
// past that): on a loaded machine one takes a minute, and the test must
// stay bounded.
func chaosSchedule(rng *rand.Rand, n int) []chaosFault {
	kinds := []chaosKind{chaosKillPlugin, chaosKillMember, chaosTermMember, chaosRestartBroker}
	total := 0
	for _, w := range chaosWeights {
		total += w
	}
	brokers := 1
	for len(kinds) < n {
		r := rng.IntN(total)
		k := chaosKind(0)
		for r >= chaosWeights[k] {
			r -= chaosWeights[k]
			k++
		}
		if k == chaosRestartBroker {
			if brokers >= n/6 {
				continue
			}
			brokers++
		}
		kinds = append(kinds, k)
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	const from, span = 0.05, 0.80
	plan := make([]chaosFault, n)
	for i, k := range kinds {
		plan[i] = chaosFault{
			kind:   k,
			at:     from + span*(float64(i)+rng.Float64())/float64(n),
			pick:   rng.Float64(),
			down:   time.Duration(rng.IntN(3000)) * time.Millisecond,
			burst:  1 + rng.IntN(4),
			settle: time.Duration(rng.IntN(1500)) * time.Millisecond,
		}
	}
	return plan
}

// chaosSeed is SLUICE_CHAOS_SEED when set (to replay a run), else the
// clock.
func chaosSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("SLUICE_CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_CHAOS_SEED=%q is not an unsigned integer: %v", s, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// chaosMember is one `sluice run` of the group.
type chaosMember struct {
	name    string // m1, m2, ... in start order
	p       *proc
	started time.Time
	plugins []int // its plugin pids when it was killed
	// pluginKills counts the plugin processes of this member the test
	// killed.
	pluginKills int
}

func (m *chaosMember) pid() int { return m.p.cmd.Process.Pid }

func (m *chaosMember) exited() bool {
	select {
	case <-m.p.done:
		return true
	default:
		return false
	}
}

// chaosStop is the outcome of one SIGTERM.
type chaosStop struct {
	why     string // "fault 7/20" or "final stop"
	member  *chaosMember
	history string // the faults up to this one
	sent    time.Time
	// Set by the watcher once the member exited or was killed:
	took     time.Duration
	code     int
	overtime bool // still running at the watcher's limit, then killed
}

// ok reports whether the member exited 0 within limit of the SIGTERM.
func (s *chaosStop) ok(limit time.Duration) bool {
	return s.code == 0 && !s.overtime && s.took <= limit
}

// chaosRun drives the members of one consumer group through a schedule.
// Only the test goroutine touches it, except the SIGTERM watchers, which
// write their chaosStop under mu.
type chaosRun struct {
	t       *testing.T
	job     *copyJob
	args    []string // sluice run flags
	cl      *kafka.Client
	drain   time.Duration // settings.drain_timeout of the pipeline
	began   time.Time
	started int
	live    []*chaosMember // running and not signalled
	all     []*chaosMember
	seed    uint64
	history []string // one line per fault done
	best    int64    // highest committed total seen
	crashes int      // members that exited by themselves
	killed  int      // plugin processes killed

	mu       sync.Mutex
	stops    []*chaosStop
	watchers sync.WaitGroup
}

// elapsed is the time since the run began, for log lines.
func (c *chaosRun) elapsed() string {
	return time.Since(c.began).Round(100 * time.Millisecond).String()
}

// startMember starts one more member of the group.
func (c *chaosRun) startMember() *chaosMember {
	c.t.Helper()
	c.started++
	m := &chaosMember{name: fmt.Sprintf("m%d", c.started), p: c.job.start(c.t, c.args...), started: time.Now()}
	c.live = append(c.live, m)
	c.all = append(c.all, m)
	return m
}

// drop removes m from the live members.
func (c *chaosRun) drop(m *chaosMember) {
	c.live = slices.DeleteFunc(c.live, func(x *chaosMember) bool { return x == m })
}

// progress is the highest committed total seen so far: the committed
// total reads 0 while the broker is down.
func (c *chaosRun) progress() int64 {
	c.best = max(c.best, committedTotal(c.cl, c.job.group, c.job.w))
	return c.best
}

// await polls cond until it holds, failing the test past within (with
// the live members' logs). Meanwhile it reaps members that exit by
// themselves.
func (c *chaosRun) await(within time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		c.reap(what)
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, m := range c.live {
				fmt.Fprintf(&logs, "--- last lines of %s (pid %d):\n%s\n", m.name, m.pid(), chaosTail(m.p.stderr.String(), 25))
			}
			c.t.Fatalf("timed out after %s waiting for %s (at %s; %d of %d committed)\nfaults so far:\n%s\n%s",
				within, what, c.elapsed(), c.best, c.job.w.total(), c.faults(), logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reap replaces every live member (one not signalled) that exited by
// itself: that is a failure, reported with the member's log, but the run
// goes on with a new member, so that the loss and drain checks still
// report. Too many such exits end the test.
func (c *chaosRun) reap(what string) {
	c.t.Helper()
	for _, m := range slices.Clone(c.live) {
		if !m.exited() {
			continue
		}
		c.drop(m)
		if n, ok := crashLoopStop(m); ok {
			// The host gives up on a plugin that died n times in a row
			// without answering a batch, and stops the pipeline: a
			// crash-looping plugin must not spin forever. When the test
			// itself killed that many, that stop is the guard working.
			n2 := c.startMember()
			c.note("%s stopped after its plugin died %d times in a row (the test killed %d of its plugins), as the host's crash-loop guard says; started %s (pid %d) in its place",
				m.name, n, m.pluginKills, n2.name, n2.pid())
			continue
		}
		c.crashes++
		c.t.Errorf("member %s (pid %d) exited by itself (%v) at %s, before %s (seed %d)\nfaults so far:\n%s\nlast lines of its log:\n%s",
			m.name, m.pid(), m.p.err, c.elapsed(), what, c.seed, c.faults(), chaosTail(m.p.stderr.String(), 30))
		if c.crashes > 5 {
			c.t.Fatalf("%d members exited by themselves: giving up", c.crashes)
		}
		n := c.startMember()
		c.note("%s exited by itself (%v); started %s (pid %d) in its place", m.name, m.p.err, n.name, n.pid())
	}
}

var chaosCrashLoopRe = regexp.MustCompile(`plugin \S+ died (\d+) times in a row without answering a batch`)

// crashLoopStop reports whether m stopped because its plugin crash-looped
// past the host's budget, with the test having killed at least that many
// of its plugin processes.
func crashLoopStop(m *chaosMember) (int, bool) {
	match := chaosCrashLoopRe.FindStringSubmatch(m.p.stderr.String())
	if match == nil {
		return 0, false
	}
	n, err := strconv.Atoi(match[1])
	return n, err == nil && m.pluginKills >= n
}

// faults lists the faults done so far, one per line.
func (c *chaosRun) faults() string {
	if len(c.history) == 0 {
		return "  (none)"
	}
	return "  " + strings.Join(c.history, "\n  ")
}

// note records a fault done.
func (c *chaosRun) note(format string, args ...any) {
	line := fmt.Sprintf("[%s] ", c.elapsed()) + fmt.Sprintf(format, args...)
	c.history = append(c.history, line)
	c.t.Log(line)
}

// pickMember chooses a live member by pick in [0,1).
func (c *chaosRun) pickMember(pick float64) *chaosMember {
	return c.live[int(pick*float64(len(c.live)))]
}

// killMember SIGKILLs a member and starts its replacement.
func (c *chaosRun) killMember(label string, f chaosFault) {
	c.t.Helper()
	c.reap(label)
	m := c.pickMember(f.pick)
	m.plugins = pluginChildren(m.pid())
	if err := m.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		if m.exited() {
			c.reap(label) // it exited by itself a moment ago
			return
		}
		c.t.Fatalf("%s: kill -9 %s (pid %d): %v", label, m.name, m.pid(), err)
	}
	c.drop(m)
	select {
	case <-m.p.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: %s (pid %d) still runs 10s after SIGKILL", label, m.name, m.pid())
	}
	n := c.startMember()
	c.note("%s: kill -9 %s (pid %d, plugins %v, up %s); started %s (pid %d)",
		label, m.name, m.pid(), m.plugins, time.Since(m.started).Round(100*time.Millisecond), n.name, n.pid())
}

// termMember SIGTERMs a member, has a watcher time its exit, and starts
// a replacement at once, as a rolling restart does.
func (c *chaosRun) termMember(label string, f chaosFault) {
	c.t.Helper()
	c.reap(label)
	m := c.pickMember(f.pick)
	// A process dies of a SIGTERM that comes before it installed its
	// handler, which sluice does before it logs anything (logs are held
	// until the pipeline is built): a SIGTERM only tests the drain from
	// the first log line on.
	c.await(time.Minute, m.name+" to log its first line", func() bool { return m.p.stderr.String() != "" || m.exited() })
	if c.reap(label); !slices.Contains(c.live, m) {
		return // it exited by itself: reported and replaced
	}
	c.drop(m)
	c.note("%s: SIGTERM %s (pid %d, plugins %v, up %s)",
		label, m.name, m.pid(), pluginChildren(m.pid()), time.Since(m.started).Round(100*time.Millisecond))
	c.signalStop(label, m)
	n := c.startMember()
	c.note("%s: started %s (pid %d) in place of %s", label, n.name, n.pid(), m.name)
}

// signalStop sends SIGTERM to m and watches its exit: the watcher waits
// up to the drain timeout plus 40s (the shutdown's own allowances and a
// margin to see how late it comes), then kills it.
func (c *chaosRun) signalStop(why string, m *chaosMember) {
	c.t.Helper()
	s := &chaosStop{why: why, member: m, history: c.faults(), sent: time.Now()}
	if err := m.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("%s: SIGTERM %s (pid %d): %v", why, m.name, m.pid(), err)
	}
	c.mu.Lock()
	c.stops = append(c.stops, s)
	c.mu.Unlock()
	limit := c.drain + 40*time.Second
	c.watchers.Go(func() {
		timer := time.NewTimer(limit)
		defer timer.Stop()
		overtime := false
		select {
		case <-m.p.done:
		case <-timer.C:
			overtime = true
			_ = m.p.cmd.Process.Kill()
			<-m.p.done
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		s.took, s.code, s.overtime = time.Since(s.sent), m.p.cmd.ProcessState.ExitCode(), overtime
	})
}

// awaitStops waits for every signalled member to exit (the watchers
// bound that).
func (c *chaosRun) awaitStops() {
	c.watchers.Wait()
}

// killPlugin SIGKILLs a plugin process of a live member (waiting for a
// member that has some: a new member starts its plugins first), then, for
// a burst, the process that replaces it, again and again: repeated deaths
// without progress are what stretch the host's restart backoff, the state
// part 1 of issue 8 drains from.
func (c *chaosRun) killPlugin(label string, f chaosFault) {
	c.t.Helper()
	var m *chaosMember
	var kids []int
	c.await(time.Minute, "a running member with plugin processes", func() bool {
		// Start the search at the picked member, so the pick decides.
		first := int(f.pick * float64(len(c.live)))
		for i := range c.live {
			m = c.live[(first+i)%len(c.live)]
			// A plugin killed while sluice starts fails its start-up
			// check, a config error (exit 2): only running pipelines.
			if !strings.Contains(m.p.stderr.String(), `msg="pipeline running"`) {
				continue
			}
			if kids = pluginChildren(m.pid()); len(kids) > 0 {
				return true
			}
		}
		return false
	})
	slices.Sort(kids)
	pid := kids[int(f.pick*float64(len(kids)))]
	for k := range f.burst {
		if k > 0 {
			// The replacement: a child that was not there before this kill.
			known := kids
			pid = 0
			deadline := time.Now().Add(30 * time.Second)
			for pid == 0 && !m.exited() && time.Now().Before(deadline) {
				kids = pluginChildren(m.pid())
				for _, kid := range kids {
					if !slices.Contains(known, kid) {
						pid = kid
					}
				}
				if pid == 0 {
					time.Sleep(20 * time.Millisecond)
				}
			}
			if pid == 0 {
				if !m.exited() {
					c.t.Errorf("%s: %s started no new plugin process within 30s of kill %d (plugins %v, seed %d)\nlast lines of its log:\n%s",
						label, m.name, k, kids, c.seed, chaosTail(m.p.stderr.String(), 20))
				}
				return
			}
			time.Sleep(f.settle) // part of the schedule
		}
		c.killOnePlugin(fmt.Sprintf("%s (kill %d of %d)", label, k+1, f.burst), m, pid, kids)
	}
}

// killOnePlugin SIGKILLs plugin process pid of m, and expects m to log
// the death within 10s.
func (c *chaosRun) killOnePlugin(label string, m *chaosMember, pid int, kids []int) {
	c.t.Helper()
	before := len(chaosPluginDeathRe.FindAllString(m.p.stderr.String(), -1))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("%s: kill -9 plugin pid %d of %s: %v", label, pid, m.name, err)
	}
	c.killed++
	m.pluginKills++
	var seen string
	deadline := time.Now().Add(10 * time.Second)
	for seen == "" && !m.exited() && time.Now().Before(deadline) {
		if found := chaosPluginDeathRe.FindAllString(m.p.stderr.String(), -1); len(found) > before {
			seen = found[before]
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.note("%s: kill -9 plugin pid %d of %s (plugins %v); it logged: %s", label, pid, m.name, kids, seen)
	if seen == "" && !m.exited() {
		c.t.Errorf("%s: %s logged nothing within 10s of its plugin pid %d being killed (seed %d)\nlast lines of its log:\n%s",
			label, m.name, pid, c.seed, chaosTail(m.p.stderr.String(), 20))
	}
}

// chaosPluginDeathRe matches what the plugin host logs when a plugin
// process dies, whatever it was doing.
var chaosPluginDeathRe = regexp.MustCompile(`msg="(plugin process failed; restarting it|plugin failed to start|plugin stream failed to open; restarting)"[^\n]*`)

// restartBroker crashes the broker and starts it again on its data, once
// no signalled member is still draining: a drain cannot finish while the
// broker is down, and this test judges drains, not outages.
func (c *chaosRun) restartBroker(label string, f chaosFault) {
	c.t.Helper()
	c.awaitStops()
	if err := kafkaScript(time.Minute, "kill"); err != nil {
		c.t.Fatalf("%s: %v", label, err)
	}
	killed := time.Now()
	time.Sleep(f.down) // the outage itself: part of the schedule
	if err := kafkaScript(3*time.Minute, "start", "--keep-data"); err != nil {
		c.t.Fatalf("%s: %v", label, err)
	}
	c.note("%s: broker killed, started again after %s, serving after %s",
		label, f.down, time.Since(killed).Round(100*time.Millisecond))
}

// ownBroker fails unless scripts/kafka.sh manages the broker at addr:
// the test restarts it, and must never restart another one (say, the
// default one while SLUICE_KAFKA_BROKERS names a private one).
func chaosOwnBroker(t *testing.T, addr string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoDir, "scripts", "kafka.sh"), "env").Output()
	if err != nil {
		t.Fatalf("scripts/kafka.sh env: %v", err)
	}
	if !strings.Contains(string(out), "export SLUICE_KAFKA_BROKERS="+addr+"\n") {
		t.Fatalf("SLUICE_KAFKA_BROKERS=%s is not the broker scripts/kafka.sh manages with this environment "+
			"(its env says:\n%s); this test restarts the broker, so it runs only against that one "+
			"(set KAFKA_PORT and SLUICE_KAFKA_CACHE for a private broker)", addr, out)
	}
	if err := kafkaScript(30*time.Second, "status"); err != nil {
		t.Fatalf("the broker at %s is not running under scripts/kafka.sh, so this test cannot restart it: %v", addr, err)
	}
}

// chaosTail returns the last n lines of s.
func chaosTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// chaosPluginBuild holds the scaffold plugin, built once per test binary.
var chaosPluginBuild struct {
	once sync.Once
	dir  string
	err  error
}

// chaosPlugin scaffolds a plugin with `sluice plugin new chaostag` (the
// scaffold adds "tag": <config.tag> to every JSON value) and builds it
// into a plugins directory next to the sluice binary. It returns that
// directory.
func chaosPlugin(t *testing.T) string {
	t.Helper()
	chaosPluginBuild.once.Do(func() {
		root := filepath.Join(filepath.Dir(bin), "chaos")
		src, plugins := filepath.Join(root, "chaostag"), filepath.Join(root, "plugins")
		scaffold := exec.Command(bin, "plugin", "new", "chaostag", src, "--sluice-src", repoDir)
		if out, err := scaffold.CombinedOutput(); err != nil {
			chaosPluginBuild.err = fmt.Errorf("sluice plugin new: %v\n%s", err, out)
			return
		}
		build := exec.Command("go", "build", "-o", filepath.Join(plugins, "chaostag"), ".")
		build.Dir = src
		// As cmd/sluice's scaffold test: a scaffold whose requirements are
		// incomplete still builds from the module cache.
		build.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"))
		if out, err := build.CombinedOutput(); err != nil {
			chaosPluginBuild.err = fmt.Errorf("building the scaffolded plugin: %v\n%s", err, out)
			return
		}
		chaosPluginBuild.dir = plugins
	})
	if chaosPluginBuild.err != nil {
		t.Fatal(chaosPluginBuild.err)
	}
	return chaosPluginBuild.dir
}

// chaosOrphans returns those of pids that still run the plugin: a
// plugin whose sluice was killed must notice and exit by itself.
func chaosOrphans(pids []int) []int {
	var alive []int
	for _, pid := range pids {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmdline), "chaostag") && !pluginZombie(pid) {
			alive = append(alive, pid)
		}
	}
	return alive
}

// chaosErrCounts counts errors by message (the offset watcher's failed
// polls: how many, and why).
type chaosErrCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *chaosErrCounts) add(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[err.Error()]++
}

func (e *chaosErrCounts) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.n) == 0 {
		return "no errors"
	}
	msgs := make([]string, 0, len(e.n))
	for m := range e.n {
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b string) int { return e.n[b] - e.n[a] })
	var b strings.Builder
	for i, m := range msgs {
		if i == 5 {
			fmt.Fprintf(&b, "; %d more kinds", len(msgs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%dx %q", e.n[m], m)
	}
	return b.String()
}
