package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Restart policy of the master.
const (
	// backoffMin is the wait before a dead worker's first replacement; it
	// doubles with each death in a row, up to backoffMax.
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
	// stableAfter is how long a worker must have served for its death to
	// reset the backoff.
	stableAfter = 10 * time.Second
	// maxStartFailures is how many workers in a row may die before they
	// are ready before the master gives up.
	maxStartFailures = 5
	// killMargin is how long past -shutdown-timeout the master waits for
	// its workers before it kills them.
	killMargin = 5 * time.Second
)

// A worker is one worker process, as the master sees it.
type worker struct {
	id        int // its slot, from 1
	pid       int
	cmd       *exec.Cmd
	started   time.Time
	readyAt   time.Time // zero until it said ready
	stopping  bool      // the master sent SIGTERM
	adminSock string    // its admin endpoint's Unix socket; "" without -admin-addr
}

// A slot is one of the N workers: the one serving and, while it is being
// replaced, its replacement.
type slot struct {
	cur     *worker // serving, or starting (first start, respawn); nil while dead
	next    *worker // its replacement, starting
	backoff time.Duration
}

// A workerEvent is what a worker's goroutines report to the master loop.
type workerEvent struct {
	w      *worker
	kind   string           // msgReady, msgRetire, or "exit"
	reason string           // for msgRetire
	state  *os.ProcessState // for "exit"
	crash  string           // for "exit": the first line of the Go runtime's crash report, if any
}

// master runs the worker processes of the command.
type master struct {
	logger *slog.Logger
	stderr io.Writer
	exe    string
	args   []string   // the command line each worker runs
	files  []*os.File // the listening sockets, passed to every worker
	grace  time.Duration
	cpus   []int // with -pin-workers, the CPUs workers are pinned to, round robin; nil: none

	events  chan workerEvent
	respawn chan int      // slot ids whose backoff is over
	done    chan struct{} // closed when run returns

	slots    []*slot // index 0 unused
	live     map[*worker]bool
	started  bool // every first worker was ready
	failures int  // deaths before ready in a row
	rolling  []int
	rollCur  int // the slot being replaced by the rolling restart, or 0
	stopping bool
	exitCode int

	stats *masterStats // the workers' starts, deaths and recycles
	quic  *quicSockets // with -http3: the UDP sockets and where packets go (http3_steer.go)
	admin *masterAdmin // nil without -admin-addr
}

// runMaster binds f.listen's sockets (or takes systemd's) and serves it from f.workers worker processes
// until ctx is done. It imports no Python. attrs describe the apps in
// the startup record. A change to a .py file under one of the watch
// directories (-reload, -debug) replaces the workers, as SIGHUP does. It
// returns the process exit code.
func runMaster(ctx context.Context, logger *slog.Logger, f *flags, args []string, stderr io.Writer, attrs []any, watch []string) int {
	n := f.workers.Count()
	exe, err := os.Executable()
	if err != nil {
		logger.Error("wsgi: cannot find this executable to start workers", "err", err)
		return exitFail
	}
	lns, removeSockets, err := f.listen.listen(logger)
	if err != nil {
		logger.Error("wsgi: cannot listen", "addr", strings.Join(f.listen.addrs, ","), "err", err)
		return exitFail
	}
	defer removeSockets() // after the workers are gone (deferred first, runs last)
	closeListeners := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	listening := addrsAttrs(lns)
	// TLS and ACME (acme.go): the key pair is checked once, here; the
	// master is the only ACME client of its workers.
	stopTLS, err := masterTLS(ctx, logger, &f.tls, lns[0].Addr())
	if err != nil {
		closeListeners()
		logger.Error("wsgi: cannot serve tls", "err", err)
		return exitFail
	}
	defer stopTLS()
	attrs = append(attrs, f.tls.logAttrs()...)
	var quicSocks *quicSockets
	if f.tls.http3 {
		addrs := make([]net.Addr, len(lns))
		for i, ln := range lns {
			addrs[i] = ln.Addr()
		}
		if quicSocks, err = newQUICSockets(logger, addrs); err != nil {
			closeListeners()
			logger.Error("wsgi: cannot serve http3", "err", err)
			return exitFail
		}
		defer quicSocks.close() // after the workers are gone
	}
	var files []*os.File
	for _, ln := range lns {
		file, err := listenerFile(ln.(syscall.Conn))
		_ = ln.Close() // the duplicate in file keeps the socket open
		if err != nil {
			logger.Error("wsgi: cannot pass the listening socket to workers", "err", err)
			for _, f := range files {
				_ = f.Close()
			}
			return exitFail
		}
		files = append(files, file)
	}
	var cpus []int
	if f.pinWorkers {
		if cpus, err = allowedCPUs(); err != nil || len(cpus) < 2 {
			cpus = nil // one CPU: nothing to choose
		}
	}
	m := &master{
		cpus:    cpus,
		logger:  logger,
		stderr:  stderr,
		exe:     exe,
		args:    args,
		files:   files,
		grace:   f.shutdownTimeout,
		events:  make(chan workerEvent),
		respawn: make(chan int),
		done:    make(chan struct{}),
		slots:   make([]*slot, n+1),
		live:    map[*worker]bool{},
		stats:   newMasterStats(),
		quic:    quicSocks,
	}
	defer func() {
		close(m.done)
		for _, f := range m.files {
			_ = f.Close()
		}
	}()
	var stopAdmin func()
	if m.admin, stopAdmin, err = openMasterAdmin(logger, f, m); err != nil {
		logger.Error("wsgi: cannot serve the admin endpoint", "err", err)
		return exitFail
	}
	defer stopAdmin()
	var adminQuery chan chan adminState
	if m.admin != nil {
		adminQuery = m.admin.query
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	logger.Info("wsgi: starting workers", append(listening, "workers", n, "pid", os.Getpid())...)
	for id := 1; id <= n; id++ {
		m.slots[id] = &slot{}
		w, err := m.spawn(id)
		if err != nil {
			m.shutdown(exitFail)
			break
		}
		m.slots[id].cur = w
	}
	serving := append(append(listening, "workers", n, "pid", os.Getpid()), attrs...)
	changed := watchCode(logger, watch, m.done)

	var kill <-chan time.Time
	for !m.stopping || len(m.live) > 0 {
		select {
		case <-ctx.Done():
			ctx = context.Background() // once
			logger.Info("wsgi: shutting down; workers finish requests in flight", "grace", m.grace)
			m.shutdown(exitOK)
		case reply := <-adminQuery:
			reply <- m.adminState()
		case <-hup:
			m.startRolling("SIGHUP")
		case file := <-changed:
			m.startRolling("code changed: " + file)
		case id := <-m.respawn:
			if s := m.slots[id]; !m.stopping && s.cur == nil && s.next == nil {
				s.cur, _ = m.spawn(id)
				if s.cur == nil {
					m.scheduleRespawn(id)
				}
			}
		case <-kill:
			kill = nil
			for w := range m.live {
				logger.Error("wsgi: grace period over; killing worker", "worker", w.id, "pid", w.pid)
				_ = w.cmd.Process.Kill()
			}
		case e := <-m.events:
			switch e.kind {
			case msgReady:
				m.ready(e.w, serving)
			case msgRetire:
				m.retire(e.w, e.reason)
			case "exit":
				m.exited(e.w, e.state, e.crash)
			}
		}
		if m.stopping && kill == nil && len(m.live) > 0 {
			kill = time.After(m.grace + killMargin)
		}
	}
	if m.exitCode == exitOK {
		logger.Info("wsgi: stopped")
	}
	return m.exitCode
}

// spawn starts a worker for slot id.
func (m *master) spawn(id int) (*worker, error) {
	r, pw, err := os.Pipe()
	if err != nil {
		m.logger.Error("wsgi: cannot start a worker", "worker", id, "err", err)
		return nil, err
	}
	cmd := exec.Command(m.exe, m.args...)
	cmd.Env = append(os.Environ(),
		envWorkerID+"="+strconv.Itoa(id),
		envWorkerFDs+"="+strconv.Itoa(len(m.files)))
	if len(m.cpus) > 0 {
		cmd.Env = append(cmd.Env, envWorkerCPU+"="+strconv.Itoa(m.cpus[(id-1)%len(m.cpus)]))
	}
	sock := m.admin.socket(id)
	if sock != "" {
		cmd.Env = append(cmd.Env, envWorkerAdmin+"="+sock)
	}
	cmd.Stdout = os.Stdout
	cmd.Stderr = m.stderr
	cmd.ExtraFiles = append(append([]*os.File(nil), m.files...), pw)
	quicIndex := -1
	if m.quic != nil {
		// A socket of its own in each group, after the pipe (http3.go).
		k, socks, keys, err := m.quic.take()
		if err != nil {
			_ = r.Close()
			_ = pw.Close()
			m.logger.Error("wsgi: cannot start a worker", "worker", id, "err", err)
			return nil, err
		}
		defer keys.Close()
		quicIndex = k
		cmd.ExtraFiles = append(append(cmd.ExtraFiles, socks...), keys)
		cmd.Env = append(cmd.Env, envWorkerQUIC+"="+strconv.Itoa(k)+","+strconv.Itoa(len(socks)))
	}
	err = cmd.Start()
	_ = pw.Close() // the worker holds the write end: EOF when it exits
	if err != nil {
		_ = r.Close()
		m.logger.Error("wsgi: cannot start a worker", "worker", id, "err", err)
		return nil, err
	}
	w := &worker{id: id, pid: cmd.Process.Pid, cmd: cmd, started: time.Now(), adminSock: sock}
	m.live[w] = true
	if quicIndex >= 0 {
		m.quic.hold(quicIndex, w)
	}
	m.stats.starts.Inc()
	m.logger.Debug("wsgi: worker started", "worker", id, "pid", w.pid)

	crashc := make(chan string, 1)
	go func() {
		defer r.Close()
		crashc <- m.readWorker(w, r)
	}()
	go func() {
		_ = cmd.Wait()
		// Its last messages first, unless a child of the app holds the pipe.
		var crash string
		select {
		case crash = <-crashc:
		case <-time.After(time.Second):
		}
		m.send(workerEvent{w: w, kind: "exit", state: cmd.ProcessState, crash: crash})
	}()
	return w, nil
}

// readWorker passes a worker's messages to the master loop until the
// pipe closes. The worker's Go runtime also writes its crash report there
// (debug.SetCrashOutput; stderr has it all): readWorker returns its first
// line ("SIGSEGV: segmentation violation", "fatal error: ..."), as a
// crash in C code ends the process with exit status 2, not the signal.
func (m *master) readWorker(w *worker, r io.Reader) string {
	var crash string
	inC := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		kind, reason, _ := strings.Cut(line, " ")
		switch {
		case kind == msgReady || kind == msgRetire:
			if !m.send(workerEvent{w: w, kind: kind, reason: reason}) {
				_, _ = io.Copy(io.Discard, r)
				return ""
			}
		case crash == "" && strings.TrimSpace(line) != "":
			crash = line
		case line == "signal arrived during cgo execution":
			inC = true
		}
	}
	// Keep draining: a crashing worker must not block on a full pipe.
	_, _ = io.Copy(io.Discard, r)
	if len(crash) > 200 {
		crash = crash[:200]
	}
	if inC {
		crash += " (in C code)"
	}
	return crash
}

// send hands e to the master loop, unless it has returned.
func (m *master) send(e workerEvent) bool {
	select {
	case m.events <- e:
		return true
	case <-m.done:
		return false
	}
}

// ready handles a worker that serves.
func (m *master) ready(w *worker, serving []any) {
	if !m.live[w] || w.stopping {
		return
	}
	w.readyAt = time.Now()
	m.failures = 0
	m.quic.update() // new HTTP/3 connections may go to w
	s := m.slots[w.id]
	if s.next == w {
		old := s.cur
		s.cur, s.next = w, nil
		m.logger.Info("wsgi: replacement worker ready", "worker", w.id, "pid", w.pid)
		if old != nil {
			m.terminate(old)
		}
		if m.rollCur == w.id {
			m.rollCur = 0
			m.rollStep()
		}
		return
	}
	if m.started {
		return
	}
	for _, s := range m.slots[1:] {
		if s.cur == nil || s.cur.readyAt.IsZero() {
			return
		}
	}
	m.started = true
	m.logger.Info("wsgi: serving", serving...)
}

// retire starts the replacement of a worker that asked for it.
func (m *master) retire(w *worker, reason string) {
	s := m.slots[w.id]
	if m.stopping || w.stopping || s.cur != w || s.next != nil || w.readyAt.IsZero() {
		return
	}
	m.logger.Info("wsgi: replacing worker", "worker", w.id, "pid", w.pid, "reason", reason)
	s.next, _ = m.spawn(w.id)
	if s.next != nil {
		m.stats.recycles.WithLabelValues(reason).Inc()
	}
}

// terminate sends SIGTERM: the worker stops accepting, finishes its
// requests and exits.
func (m *master) terminate(w *worker) {
	if w.stopping {
		return
	}
	w.stopping = true
	m.quic.update() // no new HTTP/3 connection goes to w; its own still reach it
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.logger.Error("wsgi: cannot signal worker", "worker", w.id, "pid", w.pid, "err", err)
	}
}

// shutdown stops every worker; run returns code once they are gone,
// unless a worker fails to drain (then 1).
func (m *master) shutdown(code int) {
	if !m.stopping {
		m.stopping, m.exitCode = true, code
	}
	m.rolling, m.rollCur = nil, 0
	for w := range m.live {
		m.terminate(w)
	}
}

// exited handles a worker process that has ended.
func (m *master) exited(w *worker, st *os.ProcessState, crash string) {
	delete(m.live, w)
	m.quic.release(w)
	if w.adminSock != "" {
		_ = os.Remove(w.adminSock)
	}
	if clean := st.Success() || (w.readyAt.IsZero() && signaled(st, syscall.SIGTERM)); !w.stopping || !clean {
		m.stats.deaths.WithLabelValues(deathCause(st)).Inc()
	}
	attrs := []any{"worker", w.id, "pid", w.pid, "how", howExited(st)}
	if crash != "" {
		attrs = append(attrs, "crash", crash)
	}
	if !w.readyAt.IsZero() {
		attrs = append(attrs, "served_for", time.Since(w.readyAt).Round(time.Millisecond))
	}
	s := m.slots[w.id]
	wasNext := s.next == w
	if s.cur == w {
		s.cur = nil
	}
	if wasNext {
		s.next = nil
	}
	switch {
	case w.stopping:
		if st.Success() {
			m.logger.Info("wsgi: worker stopped", attrs...)
			return
		}
		// One stopped while it was starting had no requests: it may die
		// of the SIGTERM itself, before it handles signals, or of its own
		// failure to start (a replacement importing broken code when the
		// shutdown came), which its log says and which drops nothing.
		if w.readyAt.IsZero() {
			m.logger.Info("wsgi: worker stopped before it was ready", attrs...)
			return
		}
		m.logger.Error("wsgi: worker did not stop cleanly", attrs...)
		if m.stopping {
			m.exitCode = exitFail
		}
		return
	case m.stopping:
		m.logger.Error("wsgi: worker died", attrs...)
		m.exitCode = exitFail
		return
	}

	if w.readyAt.IsZero() {
		m.logger.Error("wsgi: worker died before it was ready; its log above says why", attrs...)
	} else {
		m.logger.Error("wsgi: worker died", attrs...)
	}
	if wasNext && m.rollCur == w.id {
		m.logger.Error("wsgi: rolling restart stopped; the old workers keep serving")
		m.rolling, m.rollCur = nil, 0
	}
	if wasNext && s.cur != nil {
		// Not retried: the code on disk is broken; SIGHUP tries again.
		m.logger.Error("wsgi: replacement failed; the old worker keeps serving until the next SIGHUP", "worker", w.id, "pid", s.cur.pid)
		return
	}
	if !m.started && w.readyAt.IsZero() {
		m.logger.Error("wsgi: a worker failed to start; stopping the others")
		m.shutdown(exitFail)
		return
	}
	if w.readyAt.IsZero() {
		if m.failures++; m.failures >= maxStartFailures {
			m.logger.Error("wsgi: workers keep dying before they are ready; giving up", "in_a_row", m.failures)
			m.shutdown(exitFail)
			return
		}
	} else if time.Since(w.readyAt) >= stableAfter {
		s.backoff = 0
	}
	if s.cur == nil && s.next == nil {
		m.scheduleRespawn(w.id)
	}
}

// scheduleRespawn starts a worker for slot id after its backoff.
func (m *master) scheduleRespawn(id int) {
	s := m.slots[id]
	delay := max(s.backoff, backoffMin)
	s.backoff = min(2*delay, backoffMax)
	m.logger.Info("wsgi: restarting worker", "worker", id, "in", delay)
	time.AfterFunc(delay, func() {
		select {
		case m.respawn <- id:
		case <-m.done:
		}
	})
}

// startRolling replaces every worker, one at a time (on SIGHUP, or a
// code change with -reload); why says which.
func (m *master) startRolling(why string) {
	switch {
	case m.stopping:
		return
	case !m.started:
		m.logger.Warn("wsgi: restart before every worker is ready; ignored", "why", why)
		return
	}
	m.logger.Info("wsgi: replacing the workers one at a time", "why", why, "workers", len(m.slots)-1)
	m.rolling = m.rolling[:0]
	for id := 1; id < len(m.slots); id++ {
		m.rolling = append(m.rolling, id)
	}
	if m.rollCur == 0 {
		m.rollStep()
	}
}

// rollStep replaces the next worker of the rolling restart.
func (m *master) rollStep() {
	for len(m.rolling) > 0 {
		id := m.rolling[0]
		m.rolling = m.rolling[1:]
		s := m.slots[id]
		if s.next != nil {
			// Being replaced already; that replacement may run the old
			// code, so replace it too once it is ready.
			m.rolling = append([]int{id}, m.rolling...)
			m.rollCur = id
			return
		}
		if s.cur == nil {
			continue // dead: its respawn runs the new code
		}
		s.next, _ = m.spawn(id)
		if s.next == nil {
			m.logger.Error("wsgi: rolling restart stopped; the old workers keep serving")
			m.rolling = nil
			return
		}
		m.stats.recycles.WithLabelValues("reload").Inc()
		m.rollCur = id
		return
	}
	m.logger.Info("wsgi: rolling restart done")
}

// signaled reports whether the process was ended by sig.
func signaled(st *os.ProcessState, sig syscall.Signal) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// howExited says how a process ended: "exit status 1", "signal SIGSEGV".
func howExited(st *os.ProcessState) string {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name := unix.SignalName(ws.Signal())
		if name == "" {
			name = strconv.Itoa(int(ws.Signal()))
		}
		return fmt.Sprintf("signal %s (%v)", name, ws.Signal())
	}
	return fmt.Sprintf("exit status %d", st.ExitCode())
}
