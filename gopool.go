package wsgi

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"sync/atomic"
)

// goPool runs the Python part of requests on long-lived goroutines when
// ServeHTTP's own goroutine will not do: requests that do not run inline
// (pyrequest.go), and HTTP/2 and HTTP/3 requests that do.
//
// A new goroutine starts with a 2 KiB stack, and the way into Python
// (ServeHTTP, the cgo call, the callbacks from C) needs more: the stack
// is copied to a larger one (runtime.copystack, which walks every frame)
// and freed when the goroutine ends, on every request. HTTP/1.x runs
// requests on the connection's goroutine, whose stack stays grown; HTTP/2
// and HTTP/3 start a goroutine for each stream, so each of their requests
// paid for that growth (a sixth of the server's CPU for an HTTP/2 hello).
// A pooled goroutine keeps its stack from one request to the next (the
// garbage collector shrinks the stack of one left idle: a copy per
// collection at most, not per request).
//
// A job holds a Python slot until it returns, so at most Threads of them
// run at once: the pool never has more goroutines than that. They end
// when the Handler is freed, after its last request.
type goPool struct {
	work chan job
	n    atomic.Int32 // goroutines started
	max  int32
}

// A job is work for the pool.
type job interface{ run() }

// funcJob makes a function a job.
type funcJob func()

func (f funcJob) run() { f() }

func newGoPool(max int) *goPool {
	return &goPool{work: make(chan job), max: int32(max)}
}

// run runs j on a pooled goroutine: an idle one, a new one while there
// are fewer than max, or else the first to finish its job (which is about
// to: each job gives its slot back last, and the caller holds one).
func (p *goPool) run(j job) {
	select {
	case p.work <- j:
		return
	default:
	}
	if p.n.Add(1) <= p.max {
		go p.loop(j)
		return
	}
	p.n.Add(-1)
	p.work <- j
}

func (p *goPool) loop(j job) {
	for j != nil {
		j.run()
		j = <-p.work
	}
}

// stop ends the goroutines; no job may be given after.
func (p *goPool) stop() { close(p.work) }

// pooledInline is a request that runs as an inline one (ServeHTTP waits
// for all of it, close() included) but on a pooled goroutine: an HTTP/2
// or HTTP/3 request. Reused through Handler.inlines.
type pooledInline struct {
	h    *Handler
	w    http.ResponseWriter
	r    *http.Request
	env  *environ
	p    pyRequest
	done chan struct{} // one value when run is over
}

func (j *pooledInline) run() {
	h := j.h
	defer func() {
		// A panic of our own code: a Go panic may not end the process
		// from a goroutine net/http does not guard.
		if v := recover(); v != nil {
			h.cfg.logger.Error("wsgi: internal error serving a request", "panic", fmt.Sprint(v),
				"stack", string(debug.Stack()), "path", j.r.URL.Path)
			j.p.result = settlement{abort: true}
		}
		h.envs.Put(j.env)
		<-h.slots
		j.done <- struct{}{}
	}()
	h.run(j.w, j.r, j.env.bytes(), &j.p)
}

// runPooledInline runs an inline request on the pool and waits for it.
func (h *Handler) runPooledInline(w http.ResponseWriter, r *http.Request, env *environ, o *outcome) (abort bool, lo *leftover) {
	j := h.inlines.Get().(*pooledInline)
	j.h, j.w, j.r, j.env = h, w, r, env
	j.p = pyRequest{h: h, inline: true, act: o.act}
	h.pool.run(j)
	<-j.done
	s := j.p.result
	j.w, j.r, j.env, j.p = nil, nil, nil, pyRequest{} // drop references before pooling
	h.inlines.Put(j)
	o.status, o.sent, o.received = s.status, s.sent, s.received
	return s.abort, s.lo
}
