package wsgi

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// loopConn is what an HTTP scope (asgiExchange) and a WebSocket scope
// (wsExchange) share: the link to the app's loop, and the state the loop
// thread updates through the cpython.ASGIRequest callbacks while the
// request goroutine serves.
type loopConn struct {
	h    *Handler
	a    *cpython.ASGI
	w    http.ResponseWriter
	r    *http.Request
	conn cpython.Conn

	mu      sync.Mutex // guards wants, queued, waiting and the exchange's own loop-side state
	wants   int        // receive() calls waiting for a message
	queued  int        // bytes sent by the app, not yet written to the client
	waiting bool       // a send() waits for Drained
	notify  chan struct{}
	gone    atomic.Bool // the client left or the exchange is over: send() raises
	// detached: the response is complete and ServeHTTP returned while
	// the app's task runs on.
	detached atomic.Bool
}

func newLoopConn(h *Handler, a *cpython.ASGI, w http.ResponseWriter, r *http.Request) loopConn {
	return loopConn{h: h, a: a, w: w, r: r, notify: make(chan struct{}, 1)}
}

// Context implements cpython.ASGIRequest. Once the response is complete,
// net/http has cancelled the request's context, but the app's remaining
// work (and its gohost calls) goes on: it gets the values without the
// cancellation.
func (c *loopConn) Context() context.Context {
	if c.detached.Load() {
		return context.WithoutCancel(c.r.Context())
	}
	return c.r.Context()
}

// Want implements cpython.ASGIRequest: a receive() waits.
func (c *loopConn) Want() {
	c.mu.Lock()
	c.wants++
	c.signal()
	c.mu.Unlock()
}

// signal wakes the request goroutine.
func (c *loopConn) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// queueLocked counts n bytes the app sent; it reports true when send()
// must wait for Drained (backpressure). c.mu is held.
func (c *loopConn) queueLocked(n int) (wait bool) {
	c.queued += n
	if c.queued > asgiHighWater {
		c.waiting = true
	}
	return c.waiting
}

// wroteOut takes n bytes off the queue once they went to the client, and
// wakes a waiting send() below half the high-water mark.
func (c *loopConn) wroteOut(n int) {
	c.mu.Lock()
	c.queued -= n
	drained := c.waiting && c.queued < asgiHighWater/2
	if drained {
		c.waiting = false
	}
	c.mu.Unlock()
	if drained {
		c.a.Drained(c.conn)
	}
}

// pendingWants is how many receive() calls wait.
func (c *loopConn) pendingWants() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wants
}

// tookWant counts one waiting receive() answered.
func (c *loopConn) tookWant() {
	c.mu.Lock()
	c.wants--
	c.mu.Unlock()
}

// answerAll gives every waiting receive() msg (a disconnect).
func (c *loopConn) answerAll(msg map[string]any) {
	c.mu.Lock()
	n := c.wants
	c.wants = 0
	c.mu.Unlock()
	for range n {
		_ = c.a.Deliver(c.conn, msg)
	}
}
