package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The environment of a worker process, set by the master.
const (
	// envWorkerID is the worker's id, from 1 to the number of workers. It
	// stays in the environment, for the app.
	envWorkerID = "WSGI_WORKER_ID"
	// envWorkerFDs is how many listening sockets the worker inherits, at
	// file descriptors 3, 4, ...; the next descriptor is the write end of
	// a pipe to the master, and the UDP sockets of envWorkerQUIC follow.
	// The worker removes it from its environment.
	envWorkerFDs = "WSGI_WORKER_FDS"
)

// Lines a worker writes to the master's pipe.
const (
	msgReady  = "ready"  // the apps are imported and the worker serves
	msgRetire = "retire" // "retire REASON": replace me, then SIGTERM me
)

// firstInheritedFD is the first descriptor of exec.Cmd.ExtraFiles.
const firstInheritedFD = 3

// isWorker reports whether this process is a worker of a master.
func isWorker() bool {
	return os.Getenv(envWorkerID) != "" && os.Getenv(envWorkerFDs) != ""
}

// workerConn is a worker process's side of the master: the inherited
// listening sockets and the pipe for ready and retire messages. A nil
// *workerConn is a process that is no worker; its methods do nothing.
type workerConn struct {
	id        int
	master    int // the master's pid: this process's parent at start
	listeners []net.Listener
	pipe      *os.File
	quic      *workerQUIC // with -http3: its UDP sockets (http3.go)

	maxRequests int64 // after this many requests (jitter included), ask to retire; 0: never
	maxRSS      int64 // in bytes; 0: never

	mu      sync.Mutex // serialises writes to pipe
	retired atomic.Bool
}

// inheritWorker returns the master's listening sockets and pipe, or nil
// when this process is no worker.
func inheritWorker() (*workerConn, error) {
	if !isWorker() {
		return nil, nil
	}
	id, err := strconv.Atoi(os.Getenv(envWorkerID))
	if err != nil || id < 1 {
		return nil, fmt.Errorf("wsgi: bad %s %q", envWorkerID, os.Getenv(envWorkerID))
	}
	n, err := strconv.Atoi(os.Getenv(envWorkerFDs))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("wsgi: bad %s %q", envWorkerFDs, os.Getenv(envWorkerFDs))
	}
	// A wsgi command the app starts is no worker of this master.
	_ = os.Unsetenv(envWorkerFDs)
	if s := os.Getenv(envWorkerCPU); s != "" {
		_ = os.Unsetenv(envWorkerCPU)
		cpu, err := strconv.Atoi(s)
		if err != nil || cpu < 0 {
			return nil, fmt.Errorf("wsgi: bad %s %q", envWorkerCPU, s)
		}
		if err := pinThisProcess(cpu); err != nil {
			return nil, err
		}
	}
	wk := &workerConn{id: id, master: os.Getppid()}
	for i := range n {
		ln, err := newFDListener(firstInheritedFD + i) // not net.FileListener: see listener.go
		if err != nil {
			return nil, fmt.Errorf("wsgi: worker %d: inherited socket %d: %w", id, firstInheritedFD+i, err)
		}
		wk.listeners = append(wk.listeners, ln)
	}
	fd := firstInheritedFD + n
	syscall.CloseOnExec(fd) // the app's subprocesses must not hold the master's pipe
	wk.pipe = os.NewFile(uintptr(fd), "master")
	if wk.quic, err = inheritQUIC(fd + 1); err != nil { // http3.go
		return nil, fmt.Errorf("wsgi: worker %d: %w", id, err)
	}
	// A crash (a signal in C code ends with exit status 2) is reported on
	// stderr and, for the master to name it, on the pipe.
	if err := debug.SetCrashOutput(wk.pipe, debug.CrashOptions{}); err != nil {
		return nil, fmt.Errorf("wsgi: worker %d: %w", id, err)
	}
	return wk, nil
}

// withLimits sets the recycling limits from the flags (or the file's
// keys) and returns wk.
func (wk *workerConn) withLimits(f *flags) *workerConn {
	if wk == nil {
		return nil
	}
	if f.maxRequests > 0 {
		wk.maxRequests = int64(f.maxRequests)
		if f.maxJitter > 0 {
			wk.maxRequests += rand.Int64N(int64(f.maxJitter) + 1)
		}
	}
	wk.maxRSS = int64(f.maxRSS) << 20
	return wk
}

// tell writes one line to the master.
func (wk *workerConn) tell(logger *slog.Logger, msg string) {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	if _, err := fmt.Fprintln(wk.pipe, msg); err != nil {
		logger.Warn("wsgi: cannot reach the master", "err", err)
	}
}

// ready tells the master that this worker serves.
func (wk *workerConn) ready(logger *slog.Logger) { wk.tell(logger, msgReady) }

// retire asks the master, once, to replace this worker: it starts a
// replacement, waits until it is ready, then sends SIGTERM.
func (wk *workerConn) retire(logger *slog.Logger, reason string, attrs ...any) {
	if wk.retired.Swap(true) {
		return
	}
	logger.Info("wsgi: worker asks to be replaced", append([]any{"reason", reason, "pid", os.Getpid()}, attrs...)...)
	wk.tell(logger, msgRetire+" "+reason)
}

// countRequests counts the requests h serves and asks to retire at the
// request limit, if any.
func (wk *workerConn) countRequests(h http.Handler, logger *slog.Logger) http.Handler {
	if wk.maxRequests <= 0 {
		return h
	}
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == wk.maxRequests {
			wk.retire(logger, "max-requests", "requests", wk.maxRequests)
		}
		h.ServeHTTP(w, r)
	})
}

// watchRSS checks the resident size every second and asks to retire
// above the limit, if any, until ctx is done.
func (wk *workerConn) watchRSS(ctx context.Context, logger *slog.Logger) {
	if wk.maxRSS <= 0 {
		return
	}
	go everySecond(ctx, func() bool {
		rss, err := residentBytes()
		if err != nil {
			logger.Warn("wsgi: cannot read the resident size; -max-rss is off", "err", err)
			return false
		}
		if rss > wk.maxRSS {
			wk.retire(logger, "max-rss", "rss_mib", rss>>20, "max_rss_mib", wk.maxRSS>>20)
			return false
		}
		return true
	})
}

// everySecond calls f each second until ctx is done or f returns false.
func everySecond(ctx context.Context, f func() bool) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !f() {
			return
		}
	}
}

// residentBytes is this process's resident set size: /proc/self/statm's
// second field on Linux, else the peak from getrusage.
func residentBytes() (int64, error) {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		fields := bytes.Fields(b)
		if len(fields) >= 2 {
			pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
			if err == nil {
				return pages * int64(os.Getpagesize()), nil
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return ru.Maxrss << 10, nil // KiB on Linux
}

// watchMaster returns a context that is also done when the master goes
// away (the worker is reparented), so that an orphan drains and exits.
func (wk *workerConn) watchMaster(ctx context.Context, logger *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	master := wk.master // from before the apps imported, which may take long
	go everySecond(ctx, func() bool {
		if os.Getppid() != master {
			logger.Warn("wsgi: the master is gone; stopping", "master_pid", master)
			cancel()
			return false
		}
		return true
	})
	return ctx, cancel
}
