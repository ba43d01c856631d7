package main

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// A worker that stops while the others serve on (SIGHUP, recycling) must
// not fail a request a client has sent. http.Server.Shutdown closes every
// idle keep-alive connection at once; but "idle" is only the server's
// view: the client may have sent its next request already, which the
// close then resets (or answers with EOF), and a client that does not
// retry (wrk; any non-idempotent request) fails it. So a stopping worker
// first drains its keep-alive connections itself: it stops accepting
// (the listening socket stays open in the other workers, which take the
// new connections), answers each further request with Connection: close,
// and waits until no connection is busy and each idle one has been idle
// for keepAliveQuiet. Only then does Shutdown close what is left:
// connections whose clients have gone quiet (one quiet already when the
// drain begins is closed at once, as Shutdown would: the drain does not
// keep a worker, and its old code, answering a client that returns later).

// keepAliveQuiet is how long a keep-alive connection must have been idle
// before a draining worker closes it: far longer than a busy client takes
// to send its next request.
const keepAliveQuiet = time.Second

// drainPoll is how often a drain checks its connections.
const drainPoll = 10 * time.Millisecond

// A drainer tracks a server's connections (its ConnState) for a drain.
type drainer struct {
	mu       sync.Mutex
	draining bool
	conns    map[net.Conn]time.Time // open connections: since when idle, zero while busy
}

func newDrainer() *drainer { return &drainer{conns: map[net.Conn]time.Time{}} }

// connState is the server's ConnState hook.
func (d *drainer) connState(c net.Conn, s http.ConnState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch s {
	case http.StateNew, http.StateIdle: // a new connection has sent nothing yet
		d.conns[c] = time.Now()
	case http.StateActive:
		d.conns[c] = time.Time{}
	case http.StateHijacked, http.StateClosed:
		delete(d.conns, c)
	}
}

// handler answers with Connection: close once the drain has begun, so
// that the client opens its next connection to another worker.
func (d *drainer) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		draining := d.draining
		d.mu.Unlock()
		if draining && r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// drain closes lns and waits until the connections are quiet, or ctx is
// done.
func (d *drainer) drain(ctx context.Context, lns []net.Listener) {
	d.mu.Lock()
	d.draining = true
	d.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close() // http.Server.Serve returns; its connections go on
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for !d.quiet(time.Now()) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// quiet reports whether no connection is busy and every idle one has
// been idle for keepAliveQuiet.
func (d *drainer) quiet(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, since := range d.conns {
		if since.IsZero() || now.Sub(since) < keepAliveQuiet {
			return false
		}
	}
	return true
}
