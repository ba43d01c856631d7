package wsgi

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// The Python part of a WSGI request runs on a goroutine of its own, so
// that ServeHTTP can return (and net/http complete the response: the last
// flush, the chunked terminator, the connection free for its next request)
// as soon as the app's iterable is exhausted, while the body's close()
// (Flask's call_on_close, Django's request_finished) still runs on the
// request's Python thread state. That goroutine keeps the request's slot
// and its in-flight count until Python is done. It also lets ServeHTTP
// answer 504 on time whatever Python does (Options.RequestTimeout).
//
// The goroutine is one of the Handler's long-lived ones (gopool.go), so
// the cost is two switches per request, and under load the connection's
// goroutine waits its turn for the CPU again before net/http reads the
// next request (docs/performance.md). The alternatives
// cannot keep close() on the request's thread state: the state belongs to
// the OS thread the goroutine is pinned to, and net/http ends the response
// only when ServeHTTP's goroutine returns.
//
// So an app whose bodies have nothing to close (plain lists and tuples, as
// raw WSGI apps, Falcon and Bottle return) runs inline on ServeHTTP's
// goroutine, as it did before there was any post-response work to wait
// for: after inlineAfter such responses in a row, and while it has never
// returned a body with a close(). The first body with a close() ends that
// for good (the Handler's life): that one response is flushed to the
// client before its close() runs, but its chunked terminator and the
// connection's next request wait for close(). Without RequestTimeout only;
// a timeout needs ServeHTTP free to answer 504. HTTP/2 and HTTP/3 requests
// that run inline do so on a pooled goroutine all the same, ServeHTTP
// waiting for all of it: their handlers run on a new goroutine each
// (gopool.go).

// inlineAfter is how many responses without a close() in a row let a
// Handler's requests run inline.
const inlineAfter = 64

// learnBodies records what a response's body had to close (ok: the
// request ran to its end without a panic of ours).
func (h *Handler) learnBodies(closes, ok bool) {
	switch n := h.bodies.Load(); {
	case closes || !ok:
		if n != -1 {
			h.bodies.Store(-1)
		}
	case n >= 0 && n < inlineAfter:
		h.bodies.CompareAndSwap(n, n+1)
	}
}

// settlement is how a response ended, for ServeHTTP.
type settlement struct {
	abort bool      // cut the connection
	lo    *leftover // request body to drain

	// For the metrics: the status written (0: none), the response and
	// request body bytes.
	status         int
	sent, received int64
}

// pyRequest is what ServeHTTP and the Python goroutine of one request
// share.
type pyRequest struct {
	h       *Handler
	method  string
	path    string
	settled chan settlement // the response is out (or failed): one value

	// inline: the request runs on ServeHTTP's goroutine, which takes
	// its settlement from result after run.
	inline bool
	result settlement

	ident  atomic.Uint64 // the Python thread, for an interrupt; 0 until known
	interp int           // its interpreter, set before ident

	act *activeRequest // the live view's record; nil if unobserved

	mu       sync.Mutex
	answered bool          // ServeHTTP returned: only Python is left
	pyDone   bool          // Python returned
	timedOut bool          // RequestTimeout passed
	expired  chan struct{} // closed when RequestTimeout passes
	given    bool          // settle's value was sent (only the Python goroutine settles)
}

// settle hands ServeHTTP its answer; later calls do nothing.
func (p *pyRequest) settle(s settlement) {
	if p.inline {
		p.result = s
		return
	}
	if !p.given {
		p.given = true
		p.settled <- s
	}
}

// started records the Python thread of the request and its interpreter.
func (p *pyRequest) started(interp int, ident uint64) {
	p.interp = interp
	p.ident.Store(ident)
}

// expire runs when RequestTimeout passes. While ServeHTTP waits, it wakes
// it (ServeHTTP answers 504, then interrupts); after, it interrupts the
// app's post-response work itself.
func (p *pyRequest) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pyDone {
		return
	}
	p.timedOut = true
	p.h.stuck.Add(1)
	p.h.m.timeouts.Add(1) // a 504, a cut response, or post-response work interrupted
	if p.answered {
		p.interruptLocked("wsgi: request timed out after its response; Python was interrupted and keeps its thread until it returns")
	}
	close(p.expired)
}

// interruptLocked raises RequestTimeout in the request's Python thread.
func (p *pyRequest) interruptLocked(msg string) {
	if id := p.ident.Load(); id != 0 {
		cpython.Interrupt(p.interp, id, true)
	}
	p.h.cfg.logger.Error(msg, "timeout", p.h.cfg.requestTimeout, "method", p.method, "path", p.path)
}

// answer records that ServeHTTP returns with the response settled; a
// timeout that passed meanwhile interrupts the work left.
func (p *pyRequest) answer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answered = true
	if p.timedOut && !p.pyDone {
		p.interruptLocked("wsgi: request timed out after its response; Python was interrupted and keeps its thread until it returns")
	}
}

// finished records that Python returned; a pending interrupt that did not
// fire is taken back so that it cannot hit the thread's next request.
func (p *pyRequest) finished() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pyDone = true
	if p.timedOut {
		if id := p.ident.Load(); id != 0 {
			cpython.Interrupt(p.interp, id, false)
		}
		p.h.stuck.Add(-1)
	}
}

// runPython runs the Python part of a WSGI request on a goroutine of its
// own and returns when the response is settled: complete, failed, or
// timed out (504, or a cut connection if the response had started). It
// owns env and the slot, and gives them back when Python is done, which
// may be after ServeHTTP returned.
func (h *Handler) runPython(w http.ResponseWriter, r *http.Request, env *environ, o *outcome) (abort bool, lo *leftover) {
	if h.cfg.requestTimeout == 0 && h.bodies.Load() >= inlineAfter {
		if r.ProtoMajor != 1 {
			// HTTP/2 and HTTP/3: a new goroutine each (gopool.go).
			return h.runPooledInline(w, r, env, o)
		}
		p := pyRequest{h: h, inline: true, act: o.act}
		defer func() { h.envs.Put(env); <-h.slots }() // even if our own code panics
		h.run(w, r, env.bytes(), &p)
		o.status, o.sent, o.received = p.result.status, p.result.sent, p.result.received
		return p.result.abort, p.result.lo
	}
	p := &pyRequest{h: h, method: r.Method, path: r.URL.Path, settled: make(chan settlement, 1), act: o.act}
	pw, pr := w, r
	var gw *guardedWriter
	var body *guardedBody
	var timer *time.Timer
	if h.cfg.requestTimeout > 0 {
		// After a timeout ServeHTTP answers while Python may still run:
		// guard the writer and the body against the late goroutine.
		gw = newGuardedWriter(w)
		body = &guardedBody{r: r.Body}
		pr = r.WithContext(r.Context())
		pr.Body = io.NopCloser(body)
		pw = gw
		p.expired = make(chan struct{})
		timer = time.AfterFunc(h.cfg.requestTimeout, p.expire)
	}
	h.inflight.Add(1) // the goroutine's own hold, released when Python is done
	o.act.hold()
	// Yield first, so that connections take turns. The hand-off below and
	// back wakes each goroutine straight after the one before (the P's
	// runnext), so a connection whose next request is already read goes
	// round again without parking, and the P's local run queue never
	// empties; the connections the network poller readied meanwhile wait
	// on the global run queue, one taken per 61 scheduling rounds. Gosched
	// puts this one behind them. On one CPU (GOMAXPROCS 1) Flask JSON's
	// p99 under wrk -c16 went from 18-40 ms to 3.6-5 ms, its rate up.
	runtime.Gosched()
	h.pool.run(funcJob(func() {
		defer h.inflight.Done()
		defer h.release(p.act, false)
		defer func() {
			if timer != nil {
				timer.Stop()
			}
			p.finished()
			h.envs.Put(env)
			<-h.slots
		}()
		defer func() {
			// A panic of our own code: a Go panic may not end the
			// process from a goroutine net/http does not guard.
			if v := recover(); v != nil {
				h.cfg.logger.Error("wsgi: internal error serving a request", "panic", fmt.Sprint(v),
					"stack", string(debug.Stack()), "path", p.path)
				p.settle(settlement{abort: true})
			}
		}()
		h.run(pw, pr, env.bytes(), p)
	}))
	if p.expired == nil {
		s := <-p.settled
		o.status, o.sent, o.received = s.status, s.sent, s.received
		return s.abort, s.lo
	}
	select {
	case s := <-p.settled:
		p.answer()
		o.status, o.sent, o.received = s.status, s.sent, s.received
		return s.abort, s.lo
	case <-p.expired:
	}
	status := gw.timeOut()
	body.timeOut(http.NewResponseController(w))
	p.mu.Lock()
	p.answered = true
	if !p.pyDone {
		p.interruptLocked("wsgi: request timed out; Python was interrupted and keeps its thread until it returns")
	}
	p.mu.Unlock()
	if status != 0 {
		o.status = status
		return true, nil // the response started: cut it
	}
	o.status = http.StatusGatewayTimeout
	w.Header().Set("Connection", "close")
	plainError(w, http.StatusGatewayTimeout, "request timed out")
	return false, nil
}
