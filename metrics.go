package wsgi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// Metrics is a snapshot of a Handler's counters (Handler.Metrics): plain
// numbers, for a metrics system to export (the metrics package turns them
// into Prometheus metrics). Counters count from New; gauges are read at
// the time of the snapshot. A request's numbers are added when ServeHTTP
// returns; WSGI close() and ASGI tasks running on after their response
// are not part of its duration.
type Metrics struct {
	// Requests counts the requests ServeHTTP returned from, by method
	// class and status code; only pairs seen are listed, ordered by
	// method class (as in MethodClasses), then code (0 last). A request whose
	// handler wrote nothing counts as 200, as net/http sends; a
	// WebSocket accepted counts as 101.
	Requests []RequestCount
	// Duration is how long ServeHTTP took, in seconds.
	Duration Histogram
	// QueueWait is how long requests waited for a thread slot, in
	// seconds, including the waits that ended in a 503. A request that
	// found a slot free counts as zero.
	QueueWait Histogram
	// GILWait is how long requests waited for the GIL when they started
	// running the app, in seconds (taken in the C layer, around the GIL's
	// acquisition); for an ASGI request, also the wait for its app's event
	// loop, which another request's goroutine may be running.
	GILWait Histogram

	InFlight int // requests in ServeHTTP now
	Threads  int // thread slots (Options.Threads)
	// Busy is how many slots are held now: by requests running, and by
	// WSGI close() calls and ASGI tasks still running after their
	// response.
	Busy int

	QueueRejected uint64 // 503s: no thread slot free within QueueTimeout
	TooLarge      uint64 // 413s: a declared body over MaxBodyBytes
	BodyTimeouts  uint64 // 408s: the client stalled sending the body (BodyReadTimeout)
	// Timeouts counts requests past RequestTimeout: answered 504, or
	// cut if their response had started, or interrupted (WSGI) or
	// cancelled (ASGI) while running on after their response.
	Timeouts uint64
	// TimedOutRunning is how many WSGI requests past RequestTimeout
	// still run Python now (Stats.TimedOut).
	TimedOutRunning int

	Reloads        uint64 // reloads of the app (Options.Reload), failed ones included
	ReloadFailures uint64 // reloads whose import failed
	// Exceptions counts the exceptions the app raised that were logged:
	// from a WSGI app or its body's close(), and from an ASGI app's HTTP
	// or WebSocket task. The RequestTimeout raised in a WSGI request
	// past its timeout is not one of them (Timeouts counts those).
	Exceptions uint64

	// RequestBodyBytes counts the request body bytes read from clients
	// for the app (not those dropped after its response).
	RequestBodyBytes uint64
	// ResponseBodyBytes counts the response body bytes of the app
	// written to clients (not those of the handler's own answers: 500,
	// 503, 504...; static files included).
	ResponseBodyBytes uint64

	WebSockets int // ASGI WebSockets open now
	// ASGITasks is how many ASGI HTTP tasks are alive now, those running
	// on after their response included.
	ASGITasks int
}

// RequestCount is how many requests had a method class and status code.
type RequestCount struct {
	Method string // one of MethodClasses
	Code   int    // the status code; 0 for one outside 100-599
	Count  uint64
}

// MethodClasses are the values of RequestCount.Method: the common
// methods, and "other" for the rest.
var MethodClasses = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}

// Histogram is a snapshot of a histogram of durations in seconds.
type Histogram struct {
	// Bounds are the upper bounds of the buckets, in seconds, ascending;
	// the implicit last bucket (+Inf) holds the rest.
	Bounds []float64
	// Cumulative holds, for each bound, how many observations were at
	// most that bound.
	Cumulative []uint64
	Count      uint64  // observations
	Sum        float64 // their sum, in seconds
}

// DurationBounds are the upper bounds, in seconds, of the buckets of
// Metrics.Duration, Metrics.QueueWait and Metrics.GILWait.
var DurationBounds = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// boundNanos are DurationBounds as durations.
var boundNanos = func() (b [len(DurationBounds)]time.Duration) {
	for i, s := range DurationBounds {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

// histogram counts durations per bucket: atomics only.
type histogram struct {
	buckets [len(DurationBounds) + 1]atomic.Uint64 // not cumulative; the last is +Inf
	sum     atomic.Int64                           // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(boundNanos) && d > boundNanos[i] {
		i++
	}
	h.buckets[i].Add(1)
	if d > 0 {
		h.sum.Add(int64(d))
	}
}

func (h *histogram) snapshot() Histogram {
	s := Histogram{Bounds: DurationBounds[:], Cumulative: make([]uint64, len(DurationBounds))}
	var n uint64
	for i := range h.buckets {
		n += h.buckets[i].Load()
		if i < len(s.Cumulative) {
			s.Cumulative[i] = n
		}
	}
	s.Count = n
	s.Sum = time.Duration(h.sum.Load()).Seconds()
	return s
}

// numCodes: status codes 100-599, and one slot for anything else.
const numCodes = 501

// counters are a Handler's metrics: atomics, so that the request path
// takes no lock and allocates nothing to keep them.
type counters struct {
	// epoch is when the Handler was made: request times are read as
	// time.Since(epoch), which reads only the monotonic clock (time.Now
	// reads the wall clock too).
	epoch time.Time

	requests  [len(MethodClasses)][numCodes]atomic.Uint64
	duration  histogram
	queueWait histogram
	gilWait   histogram

	// Requests in flight are those counted by Handler.requests (which
	// ServeHTTP counts once the Handler is open) minus those done, but
	// for the refusals of a closed Handler, which done counts too.
	refusedClosed atomic.Uint64

	queueRejected atomic.Uint64
	tooLarge      atomic.Uint64
	bodyTimeouts  atomic.Uint64
	timeouts      atomic.Uint64

	reloads        atomic.Uint64
	reloadFailures atomic.Uint64
	exceptions     atomic.Uint64

	bodyIn  atomic.Uint64
	bodyOut atomic.Uint64

	webSockets atomic.Int64
	asgiTasks  atomic.Int64
}

// outcome is what ServeHTTP learned of a request's response, for the
// counters: filled along the way, on ServeHTTP's stack.
type outcome struct {
	status   int   // the status written; 0: none (net/http sends 200)
	sent     int64 // response body bytes the app's response wrote
	received int64 // request body bytes the app read

	act *activeRequest // the live view's record; nil if unobserved
}

// methodClass is the index in MethodClasses of a request method.
func methodClass(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	case http.MethodOptions:
		return 6
	}
	return 7
}

// now is the time since epoch, for request durations.
func (c *counters) now() time.Duration { return time.Since(c.epoch) }

// done adds a request's numbers when ServeHTTP returns (deferred, so an
// aborted response counts too); start is when it began, from now.
func (c *counters) done(method string, o *outcome, start time.Duration) {
	c.duration.observe(c.now() - start)
	code := o.status
	if code == 0 {
		code = http.StatusOK
	}
	i := numCodes - 1
	if code >= 100 && code <= 599 {
		i = code - 100
	}
	c.requests[methodClass(method)][i].Add(1)
	if o.sent > 0 {
		c.bodyOut.Add(uint64(o.sent))
	}
	if o.received > 0 {
		c.bodyIn.Add(uint64(o.received))
	}
}

// timeoutType is the exception RequestTimeout raises in a request's
// Python thread (internal/cpython/host.py): ours, not the app's.
const timeoutType = "_wsgi_host.RequestTimeout"

// exception counts an exception of the app that is being logged.
func (c *counters) exception(pe *PythonError) {
	if pe.Type != timeoutType {
		c.exceptions.Add(1)
	}
}

// Metrics returns a snapshot of the handler's counters. It is safe to
// call at any time, also concurrently with requests and after Close.
func (h *Handler) Metrics() Metrics {
	c := &h.m
	// Done first, then begun: a request is never done and not begun.
	duration := c.duration.snapshot()
	done := duration.Count - c.refusedClosed.Load()
	m := Metrics{
		Duration:          duration,
		QueueWait:         c.queueWait.snapshot(),
		GILWait:           c.gilWait.snapshot(),
		InFlight:          int(h.requests.Load() - done),
		Threads:           h.cfg.threads,
		Busy:              len(h.slots),
		QueueRejected:     c.queueRejected.Load(),
		TooLarge:          c.tooLarge.Load(),
		BodyTimeouts:      c.bodyTimeouts.Load(),
		Timeouts:          c.timeouts.Load(),
		TimedOutRunning:   int(h.stuck.Load()),
		Reloads:           c.reloads.Load(),
		ReloadFailures:    c.reloadFailures.Load(),
		Exceptions:        c.exceptions.Load(),
		RequestBodyBytes:  c.bodyIn.Load(),
		ResponseBodyBytes: c.bodyOut.Load(),
		WebSockets:        int(c.webSockets.Load()),
		ASGITasks:         int(c.asgiTasks.Load()),
	}
	for mi := range c.requests {
		for ci := range c.requests[mi] {
			n := c.requests[mi][ci].Load()
			if n == 0 {
				continue
			}
			code := 0
			if ci < numCodes-1 {
				code = ci + 100
			}
			m.Requests = append(m.Requests, RequestCount{Method: MethodClasses[mi], Code: code, Count: n})
		}
	}
	return m
}

// GCGeneration is one generation of Python's garbage collector, as
// gc.get_stats() and gc.get_objects(generation) report it.
type GCGeneration struct {
	Collections   uint64 // times it was collected
	Collected     uint64 // objects collected
	Uncollectable uint64 // objects found uncollectable
	Objects       int    // objects it tracks now
}

// gcSource reads the collector's numbers: one line per generation.
const gcSource = `import gc
result = "\n".join("%d %d %d %d" % (s.get("collections", 0), s.get("collected", 0),
    s.get("uncollectable", 0), len(gc.get_objects(generation=i)))
    for i, s in enumerate(gc.get_stats()))
`

// PythonGC reports Python's garbage collector, one entry per generation.
// The interpreter is shared by every Handler of the process, so the
// numbers are the same whichever Handler reports them. It takes the GIL
// and lists each generation's objects: call it when metrics are scraped,
// not per request. It fails once the interpreter is finalized.
func (h *Handler) PythonGC() ([]GCGeneration, error) {
	lifecycle.RLock()
	defer lifecycle.RUnlock()
	if finalized.Load() {
		return nil, ErrFinalized
	}
	out, err := cpython.Eval(gcSource)
	if err != nil {
		return nil, fmt.Errorf("wsgi: python gc: %w", err)
	}
	var gens []GCGeneration
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("wsgi: python gc: unexpected line %q", line)
		}
		var v [4]uint64
		for i := range f {
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return nil, fmt.Errorf("wsgi: python gc: %w", err)
			}
		}
		gens = append(gens, GCGeneration{Collections: v[0], Collected: v[1], Uncollectable: v[2], Objects: int(v[3])})
	}
	return gens, nil
}
