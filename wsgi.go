package wsgi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// Handler serves one WSGI app. It is an http.Handler; Close releases it.
type Handler struct {
	id     uint64 // names the app to Python's callbacks (bridge.go)
	cfg    *config
	isASGI bool
	// relativePaths: ASGI scopes carry path without root_path (see
	// buildScope).
	relativePaths bool
	gen           atomic.Pointer[appGen] // the current import of the app
	// interps are the sub-interpreters the app runs in (Options.Interpreters),
	// nil for the main interpreter.
	interps []int
	slots   chan struct{} // one token per request allowed to run Python
	pool    *goPool       // runs the Python part of requests not run inline
	static  *staticFiles  // nil unless Options.Static
	auth    *basicAuth    // nil unless Options.BasicAuth

	// bodies says where WSGI requests run (pyrequest.go): n >= 0 is how
	// many responses in a row had no close() to call, inline at
	// inlineAfter; -1 once one had.
	bodies atomic.Int32

	requests atomic.Uint64 // requests served, for Requests
	stuck    atomic.Int64  // requests past RequestTimeout whose Python still runs
	logFile  *os.File      // Options.LogFile, closed by Close

	stopWatch chan struct{} // Options.Reload: stops the watcher
	watchDone chan struct{}

	mu       sync.Mutex
	closed   bool // no new requests
	freed    bool // the app is released
	inflight sync.WaitGroup

	envs      sync.Pool // *environ
	bufs      sync.Pool // *[]byte, for list bodies copied out of Python
	exchanges sync.Pool // *exchange
	inlines   sync.Pool // *pooledInline

	live liveList // requests in progress, for Snapshot
	// unobserved: no metrics counted at ServeHTTP's end and no live view
	// (set by the benchmark that measures what they cost).
	unobserved bool

	m counters // for Metrics; last, away from the fields above
}

// bodyBufSize is the largest list body copied out of Python in the same
// call that ran the app; bigger ones are written from Python's memory.
const bodyBufSize = 32 << 10

// New starts the interpreter if this is the first Handler of the process,
// imports the app and returns a Handler for it. An app that fails to
// import is reported with its *PythonError (use errors.As, and %+v for the
// traceback).
func New(opts Options) (*Handler, error) {
	// Finalize waits for News in progress, and a New never starts once
	// the interpreter is finalized.
	lifecycle.RLock()
	defer lifecycle.RUnlock()
	if err := startInterpreter(); err != nil {
		return nil, err
	}
	cfg, err := opts.resolve(cpython.MinorVersion())
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg}
	h.m.epoch = time.Now()
	if cfg.logFile != "" {
		f, err := os.OpenFile(cfg.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("wsgi: LogFile: %w", err)
		}
		h.logFile = f
		cfg.logger = slog.New(slog.NewMultiHandler(cfg.logger.Handler(),
			slog.NewTextHandler(f, nil).WithAttrs([]slog.Attr{slog.String("app", cfg.name)})))
	}
	h.id = registerApp(h)
	if cfg.interpreters > 1 {
		if h.interps, err = cpython.AcquireInterpreters(cfg.interpreters); err != nil {
			h.free()
			return nil, err
		}
	}
	apps, err := h.load()
	if err != nil {
		h.free()
		return nil, err
	}
	app := apps[0]
	switch cfg.protocol {
	case "asgi":
		h.isASGI = true
	case "auto":
		h.isASGI = app.IsASGI()
	}
	if h.isASGI && opts.Threads == 0 {
		h.cfg.threads = asgiDefaultThreads
	}
	if h.isASGI {
		h.relativePaths = app.RelativePaths()
	}
	h.slots = make(chan struct{}, h.cfg.threads)
	h.pool = newGoPool(h.cfg.threads)
	g, err := h.newGen(apps, nil)
	if err != nil {
		h.free()
		return nil, err
	}
	h.install(g)
	if cfg.static {
		if h.static, err = newStaticFiles(filepath.Join(cfg.dir, "static"), cfg.prefix+"/static/"); err != nil {
			h.free()
			return nil, err
		}
	}
	if cfg.basicAuth != nil {
		if h.auth, err = newBasicAuth(cfg.basicAuth, cfg.name); err != nil {
			h.free()
			return nil, err
		}
	}
	if cfg.reload {
		if err := h.startWatching(); err != nil {
			h.free()
			return nil, err
		}
	}
	openHandlers.Add(1)
	h.envs.New = func() any { return new(environ) }
	h.bufs.New = func() any { b := make([]byte, bodyBufSize); return &b }
	h.exchanges.New = func() any { return new(exchange) }
	h.inlines.New = func() any { return &pooledInline{done: make(chan struct{}, 1)} }
	return h, nil
}

// Close stops the handler: new requests get 503, requests in flight
// finish, then the app's Python objects are released. It waits as long as
// requests run; Shutdown bounds the wait. The interpreter stays up for
// other Handlers and later ones, unless FinalizeOnClose says otherwise
// (see also Finalize). Close is idempotent.
func (h *Handler) Close() error { return h.Shutdown(context.Background()) }

// Shutdown is Close with a deadline: if requests are still running when
// ctx ends (Python stuck in a C call, say), it returns an error and leaves
// the app loaded for them (and the interpreter up); calling it again waits
// again. With FinalizeOnClose, the last Handler's Shutdown also finalizes
// the interpreter within ctx.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if h.freed {
		h.mu.Unlock()
		return nil
	}
	first := !h.closed
	h.closed = true
	h.mu.Unlock()
	if first && h.stopWatch != nil {
		close(h.stopWatch)
		<-h.watchDone
	}
	drained := make(chan struct{})
	go func() {
		h.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		return fmt.Errorf("wsgi: %s: requests still running (%d busy): %w", h.cfg.name, len(h.slots), ctx.Err())
	}
	h.mu.Lock()
	if h.freed {
		h.mu.Unlock()
		return nil
	}
	h.freed = true
	h.free()
	if h.cfg.finalizeOnClose {
		finalizeWhenIdle.Store(true)
	}
	last := openHandlers.Add(-1) == 0
	h.mu.Unlock()
	if last && finalizeWhenIdle.Load() {
		return finalizeIfIdle(ctx)
	}
	return nil
}

// free releases the app: its Python objects, its id and its log file.
func (h *Handler) free() {
	unregisterApp(h.id)
	if g := h.gen.Swap(nil); g != nil {
		g.unref()
	}
	if h.pool != nil {
		h.pool.stop()
	}
	if h.interps != nil {
		// Every generation is released: nothing of ours runs there.
		cpython.ReleaseInterpreters(h.interps)
		h.interps = nil
	}
	if h.logFile != nil {
		_ = h.logFile.Close()
	}
}

// Name is the app's name, as in log records.
func (h *Handler) Name() string { return h.cfg.name }

// Protocol is "wsgi" or "asgi": how the app is served.
func (h *Handler) Protocol() string {
	if h.isASGI {
		return "asgi"
	}
	return "wsgi"
}

// Prefix is the URL path the app is mounted at ("" for the root).
func (h *Handler) Prefix() string { return h.cfg.prefix }

// Stats is a snapshot of a Handler's load.
type Stats struct {
	Threads  int    // Options.Threads
	Busy     int    // requests holding a thread now
	TimedOut int    // of those, requests past RequestTimeout whose Python still runs
	Requests uint64 // requests given to the handler so far
}

// Stats reports the handler's load.
func (h *Handler) Stats() Stats {
	return Stats{Threads: h.cfg.threads, Busy: len(h.slots), TimedOut: int(h.stuck.Load()), Requests: h.requests.Load()}
}

// Requests is how many requests the handler has been given.
func (h *Handler) Requests() uint64 { return h.requests.Load() }

// begin registers a request unless the handler is closed.
func (h *Handler) begin() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.inflight.Add(1)
	return true
}

// ServeHTTP runs the app for one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var o outcome
	if h.unobserved {
		h.serve(w, r, &o)
		return
	}
	start := h.m.now()
	o.act = h.track(r, start)
	// A function of its own: one more defer in serve, with its many
	// returns, would cost all its defers their open coding.
	defer h.served(r.Method, &o, start)
	h.serve(w, r, &o)
}

// served counts a request whose ServeHTTP returns, and drops its hold on
// its live view record.
func (h *Handler) served(method string, o *outcome, start time.Duration) {
	h.m.done(method, o, start)
	h.release(o.act, true)
}

// serve is ServeHTTP, filling in o what the metrics count.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, o *outcome) {
	if !h.begin() {
		h.m.refusedClosed.Add(1)
		o.status = http.StatusServiceUnavailable
		unavailable(w, "wsgi: the app is shutting down")
		return
	}
	defer h.inflight.Done()
	h.requests.Add(1)
	if len(r.TransferEncoding) > 0 {
		// A chunked body is how a Content-Length + Transfer-Encoding
		// smuggling attempt arrives (net/http drops the Content-Length
		// without saying so): never serve another request on this
		// connection, whatever was pipelined behind it.
		w.Header().Set("Connection", "close")
	}
	if h.cfg.accessLog {
		a := &statusWriter{ResponseWriter: w}
		defer h.logAccess(a, r, time.Now())
		w = a
	}

	if h.auth != nil {
		if r = h.auth.check(w, r); r == nil {
			o.status = http.StatusUnauthorized
			return
		}
	}
	if h.static != nil && h.static.matches(r) {
		sw := &statusWriter{ResponseWriter: w}
		if h.static.serve(sw, r) {
			o.status, o.sent = sw.status, sw.bytes
			return
		}
	}
	if h.isASGI {
		h.serveASGIHTTP(w, r, o)
		return
	}

	env := h.envs.Get().(*environ)
	env.reset()
	if status, reason := buildEnvironFor(env, r, h.cfg.prefix, h.cfg.env, h.cfg.trusted.peer(r)); status != 0 {
		h.envs.Put(env)
		h.cfg.logger.Debug("wsgi: request refused", "status", status, "reason", reason, "path", r.URL.Path)
		o.status = status
		plainError(w, status, http.StatusText(status))
		return
	}

	if o.status = h.admit(w, r); o.status != 0 {
		h.envs.Put(env)
		return
	}
	o.act.setState(stateInPython)
	abort, lo := h.runPython(w, r, env, o) // gives env and the slot back itself
	if lo != nil && !lo.drain() {
		abort = true
	}
	if abort {
		// Tell net/http to drop the connection so the client sees the
		// response is incomplete (no clean end of a chunked body).
		panic(http.ErrAbortHandler)
	}
}

// admit applies the body size limit and takes a slot (waiting at most the
// queue timeout), answering 413 or 503 itself when it says no: it returns
// that status, or 0 when the request may run.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) int {
	if max := h.cfg.maxBodyBytes; max > 0 {
		if r.ContentLength > max {
			h.m.tooLarge.Add(1)
			plainError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return http.StatusRequestEntityTooLarge
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	if !h.acquire(r.Context()) {
		// Also when the request's context ended while it waited (a
		// middleware's deadline, or the client left): say so rather
		// than let net/http send an empty 200.
		h.cfg.logger.Warn("wsgi: no python thread free in time; answering 503",
			"queue_timeout", h.cfg.queueTimeout, "threads", h.cfg.threads, "context", r.Context().Err())
		h.m.queueRejected.Add(1)
		unavailable(w, "wsgi: server busy")
		return http.StatusServiceUnavailable
	}
	return 0
}

// acquire takes a Python slot, waiting at most the queue timeout.
func (h *Handler) acquire(ctx context.Context) bool {
	select {
	case h.slots <- struct{}{}:
		h.m.queueWait.observe(0)
		return true
	default:
	}
	start := time.Now()
	defer func() { h.m.queueWait.observe(time.Since(start)) }()
	t := time.NewTimer(h.cfg.queueTimeout)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// run calls the app and streams its response, on the request's Python
// goroutine (runPython). Once the response is out it settles p, telling
// ServeHTTP whether the connection must be aborted and what body the app
// left unread (to be drained once the request has given its thread back);
// only then does it call the body's close().
func (h *Handler) run(w http.ResponseWriter, r *http.Request, env []byte, p *pyRequest) {
	g := h.current()
	defer g.unref()
	if g.app == nil { // the last reload failed
		h.internalError(w, g.err)
		p.settle(settlement{status: http.StatusInternalServerError})
		return
	}
	app, slot := g.pick()
	defer g.done(slot)
	x := h.exchanges.Get().(*exchange)
	x.reset(h, w, r)
	handle := cpython.Register(x)
	bufp := h.bufs.Get().(*[]byte)

	// Every Python step of this request must use the same thread state.
	runtime.LockOSThread()
	if !p.inline {
		p.started(app.Interp(), cpython.ThreadIdent())
	}
	x.act = p.act
	var call cpython.Call
	var thread *atomic.Uint64 // for the live view, stored by C as the app starts
	if p.act != nil {
		thread = &p.act.thread
	}
	var s settlement
	ok := false
	var first cpython.StepKind
	defer func() {
		closes := call.Live() && first != cpython.List // a list's close() is nothing
		h.learnBodies(closes, ok)
		if closes && p.inline && ok && !s.abort && x.sent && x.werr == nil {
			// The first body with a close() since the app went inline:
			// put the response on the wire before close() runs here.
			_ = x.flush()
		}
		// The request's wsgi.errors text is logged before its response
		// ends; what close() writes, after it.
		x.flushErrors()
		// The response is out: ServeHTTP may return while close() runs.
		x.over.Store(true)
		s.abort = s.abort || !ok // a panic of our own code
		s.status, s.sent, s.received = x.status, x.written, x.body.got
		p.settle(s)
		x.finish(&call) // after a panic in our own code too
		runtime.UnlockOSThread()
		handle.Release()
		h.bufs.Put(bufp)
		x.flushErrors()
		x.reset(nil, nil, emptyRequest) // drop references before pooling
		h.exchanges.Put(x)
	}()
	st := app.Start(&call, handle, env, *bufp, thread)
	h.m.gilWait.observe(st.GILWait)
	first = st.Kind
	s.abort = x.serve(&call, st, *bufp)
	if !s.abort {
		s.lo = x.leftover()
	}
	ok = true
}

// internalError answers 500, with the traceback when Debug is on.
func (h *Handler) internalError(w http.ResponseWriter, err error) {
	body := "500 Internal Server Error\n"
	if h.cfg.debug {
		var pe *PythonError
		if errors.As(err, &pe) && pe.Traceback != "" {
			if err != error(pe) { // say what failed: "wsgi: loading ..."
				body += "\n" + err.Error() + "\n"
			}
			body += "\n" + pe.Traceback
		} else {
			body += "\n" + err.Error() + "\n"
		}
	}
	plainError(w, http.StatusInternalServerError, body)
}

func unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	plainError(w, http.StatusServiceUnavailable, msg)
}

// plainError writes a text/plain response with a fixed length.
func plainError(w http.ResponseWriter, status int, body string) {
	if len(body) == 0 || body[len(body)-1] != '\n' {
		body += "\n"
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// emptyRequest stands in for the request in a pooled exchange.
var emptyRequest = &http.Request{Body: http.NoBody}
