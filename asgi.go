package wsgi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// ASGI apps run on an asyncio event loop of their own (cpython.ASGI),
// which has no thread: a request's goroutine starts the app on the loop
// (its first step runs there, in the same C call) and then serves the
// messages the app sends, which asgiExchange.Send queues without waiting
// for the network, whichever goroutine runs the loop at the time;
// receive() asks Go for messages, which Go delivers from the request body
// or on disconnect.

const (
	// lifespanTimeout bounds how long the app's startup and shutdown may
	// take.
	lifespanTimeout = 60 * time.Second
	// loopStopTimeout bounds how long the tasks still running when an app
	// stops may take to finish once cancelled.
	loopStopTimeout = 10 * time.Second
	// asgiDefaultThreads is how many ASGI requests may be in progress at
	// once when Options.Threads is zero: they are coroutines, not threads.
	asgiDefaultThreads = 1024
	// Body bytes queued for the client above which send() waits.
	asgiHighWater = 1 << 20
	// asgiReadSize is the largest request body chunk handed to receive().
	asgiReadSize = 64 << 10
	// disconnectGrace is how long a request waits for the app to return
	// after the client left; the app's sends raise OSError meanwhile.
	disconnectGrace = 5 * time.Second
)

// startASGI creates the app's event loop and runs its lifespan startup.
func (h *Handler) startASGI(app *cpython.App) (*cpython.ASGI, error) {
	a, err := cpython.NewASGI(app, func(err error) {
		h.cfg.logger.Error("wsgi: ASGI event loop", "error", err)
	})
	if err != nil {
		return nil, fmt.Errorf("wsgi: starting the ASGI event loop: %w", err)
	}
	status, msg, err := a.Lifespan("startup", lifespanTimeout)
	switch {
	case err != nil:
		_ = a.Stop(loopStopTimeout)
		return nil, fmt.Errorf("wsgi: ASGI lifespan startup: %w", err)
	case status == "failed":
		_ = a.Stop(loopStopTimeout)
		return nil, fmt.Errorf("wsgi: ASGI lifespan startup failed: %s", msg)
	case status == "unsupported":
		h.cfg.logger.Debug("wsgi: the ASGI app does not support lifespan; serving without it", "detail", msg)
	}
	return a, nil
}

// stopASGI runs the lifespan shutdown and stops the event loop.
func (h *Handler) stopASGI(a *cpython.ASGI) {
	status, msg, err := a.Lifespan("shutdown", lifespanTimeout)
	switch {
	case err != nil:
		h.cfg.logger.Error("wsgi: ASGI lifespan shutdown", "error", err)
	case status == "failed":
		h.cfg.logger.Error("wsgi: ASGI lifespan shutdown failed", "message", msg)
	}
	if err := a.Stop(loopStopTimeout); err != nil {
		h.cfg.logger.Error("wsgi: ASGI event loop", "error", err)
	}
}

// asgiEvent is a message from the app, queued for the request goroutine.
type asgiEvent struct {
	kind     string       // message type, or "done"
	head     responseHead // http.response.start
	trailers bool         // http.response.start declared trailers
	body     []byte       // http.response.body
	more     bool         // more_body / more_trailers
	header   http.Header  // http.response.trailers
	path     string       // http.response.pathsend
	links    []string     // http.response.early_hint: "Link", value, ...
	exc      *cpython.Exception
}

// asgiExchange is one HTTP request served by an ASGI app.
type asgiExchange struct {
	loopConn

	// Filled by the loop's runner (Send, Done), under mu; drained by serve.
	events    []asgiEvent
	evbuf     [4]asgiEvent // events' first backing array: hello's start, body and done
	startSeen bool
	bodyDone  bool
	trailers  bool

	// Owned by the request goroutine.
	ctrl    *http.ResponseController
	head    responseHead
	started bool // http.response.start was handled; the head waits for the body
	sent    bool
	noBody  bool
	sentBody
	werr      error
	reading   bool           // a body read is in flight
	bodyEOF   bool           // the whole body was delivered
	bodyRead  int64          // body bytes delivered
	stalled   bool           // the body read timed out
	cancelled bool           // the request's context ended while a body read was in flight
	duplex    bool           // full duplex was enabled
	bodyCh    chan bodyChunk // made with the first read
	finished  bool           // the response was completed
	done      bool           // the app returned
	runsOn    bool           // the response is complete, the app's task is not
	deadline  time.Time      // RequestTimeout, from the start; zero: none
	exc       *cpython.Exception
	act       *activeRequest // the live view's record, or nil
}

type bodyChunk struct {
	data []byte
	err  error
}

// Send implements cpython.ASGIRequest: it runs in whichever goroutine
// runs the loop, so it only validates and queues.
func (x *asgiExchange) Send(msg map[string]any) (bool, error) {
	kind, _ := msg["type"].(string)
	if x.gone.Load() {
		return false, fmt.Errorf("wsgi: %s: %w", kind, cpython.ErrGone)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	ev := asgiEvent{kind: kind}
	switch kind {
	case "http.response.start":
		status, ok := msg["status"].(int64)
		if !ok {
			return false, cpython.BadValue(errors.New("wsgi: http.response.start: status must be an int"))
		}
		fields, err := headerFields(msg["headers"])
		if err != nil {
			return false, err
		}
		trailers, _ := msg["trailers"].(bool)
		return x.startLocked(status, fields, trailers)
	case "http.response.body":
		var body []byte
		switch b := msg["body"].(type) {
		case nil:
		case []byte:
			body = b
		default:
			return false, cpython.BadValue(errors.New("wsgi: http.response.body: body must be bytes"))
		}
		more, _ := msg["more_body"].(bool)
		return x.bodyLocked(body, more, false)
	case "http.response.trailers":
		if !x.trailers {
			return false, errors.New("wsgi: http.response.trailers without trailers=True in http.response.start")
		}
		fields, err := headerFields(msg["headers"])
		if err != nil {
			return false, err
		}
		ev.header = make(http.Header)
		for i := 0; i < len(fields); i += 2 {
			if err := validateHeader(fields[i], fields[i+1]); err != nil {
				return false, cpython.BadValue(err)
			}
			ev.header.Add(fields[i], fields[i+1])
		}
		ev.more, _ = msg["more_trailers"].(bool)
	case "http.response.early_hint":
		// asgiref's early-hints extension: each of links is a Link
		// header value, sent in a 103 before the final response.
		if x.bodyDone {
			return false, errors.New("wsgi: http.response.early_hint after the response")
		}
		links, ok := msg["links"].([]any)
		if !ok {
			return false, cpython.BadValue(errors.New("wsgi: http.response.early_hint: links must be a list of bytes"))
		}
		for _, l := range links {
			b, ok := l.([]byte)
			if !ok {
				return false, cpython.BadValue(errors.New("wsgi: http.response.early_hint: links must be a list of bytes"))
			}
			if err := validateHeader("Link", string(b)); err != nil {
				return false, cpython.BadValue(err)
			}
			ev.links = append(ev.links, "Link", string(b))
		}
	case "http.response.pathsend":
		if !x.startSeen || x.bodyDone {
			return false, errors.New("wsgi: http.response.pathsend must follow http.response.start, instead of a body")
		}
		p, ok := msg["path"].(string)
		if !ok || !strings.HasPrefix(p, "/") {
			return false, cpython.BadValue(errors.New("wsgi: http.response.pathsend: path must be an absolute path"))
		}
		ev.path = p
		x.bodyDone = true
	default:
		return false, cpython.BadValue(fmt.Errorf("wsgi: unexpected ASGI message type %q for an http scope", kind))
	}
	x.events = append(x.events, ev)
	x.signal()
	return x.waiting, nil
}

// Start implements cpython.ASGIRequest (http.response.start, fast way).
func (x *asgiExchange) Start(status int64, fields []string, trailers bool) (bool, error) {
	if x.gone.Load() {
		return false, fmt.Errorf("wsgi: http.response.start: %w", cpython.ErrGone)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.startLocked(status, fields, trailers)
}

// Body implements cpython.ASGIRequest (http.response.body, fast way); p
// is Python's memory.
func (x *asgiExchange) Body(p []byte, more bool) (bool, error) {
	if x.gone.Load() {
		return false, fmt.Errorf("wsgi: http.response.body: %w", cpython.ErrGone)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.bodyLocked(p, more, true)
}

func (x *asgiExchange) startLocked(status int64, fields []string, trailers bool) (bool, error) {
	if x.startSeen {
		return false, errors.New("wsgi: http.response.start sent twice")
	}
	fields, declared, err := takeTrailerHeader(fields, trailers)
	if err != nil {
		return false, cpython.BadValue(err)
	}
	head, err := parseASGIResponseHead(status, fields)
	if err != nil {
		return false, cpython.BadValue(err)
	}
	if len(declared) > 0 {
		head.header["Trailer"] = declared
	}
	x.startSeen, x.trailers = true, trailers
	x.events = append(x.events, asgiEvent{kind: "http.response.start", head: head, trailers: trailers})
	x.signal()
	return false, nil
}

// bodyLocked queues a body message; copy says p is not ours to keep.
func (x *asgiExchange) bodyLocked(p []byte, more, copy bool) (bool, error) {
	if !x.startSeen {
		return false, errors.New("wsgi: http.response.body before http.response.start")
	}
	if x.bodyDone {
		return false, errors.New("wsgi: http.response.body after the body ended")
	}
	if copy && len(p) > 0 {
		p = append([]byte(nil), p...)
	}
	x.bodyDone = !more
	x.events = append(x.events, asgiEvent{kind: "http.response.body", body: p, more: more})
	x.signal()
	return x.queueLocked(len(p)), nil
}

// takeTrailerHeader takes the Trailer headers out of fields: with
// trailers announced, they declare the trailer fields to come (RFC 9110
// section 6.6.2) and net/http sends them in the head; without, Trailer
// stays a header an app may not send.
func takeTrailerHeader(fields []string, trailers bool) (rest, declared []string, err error) {
	n := 0
	for i := 0; i < len(fields); i += 2 {
		if strings.EqualFold(fields[i], "Trailer") {
			n++
		}
	}
	if n == 0 {
		return fields, nil, nil
	}
	if !trailers {
		return nil, nil, errors.New(`wsgi: a "trailer" header needs trailers=True in http.response.start`)
	}
	rest = make([]string, 0, len(fields)-2*n)
	var names []string
	for i := 0; i < len(fields); i += 2 {
		if !strings.EqualFold(fields[i], "Trailer") {
			rest = append(rest, fields[i], fields[i+1])
			continue
		}
		for _, name := range strings.Split(fields[i+1], ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			if err := validateHeader(name, ""); err != nil {
				return nil, nil, fmt.Errorf("wsgi: trailer header names %q: %w", name, err)
			}
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		declared = []string{strings.Join(names, ", ")}
	}
	return rest, declared, nil
}

// headerFields flattens ASGI headers ([[name, value], ...] of bytes).
func headerFields(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, cpython.BadValue(errors.New("wsgi: headers must be a list of [name, value] byte pairs"))
	}
	fields := make([]string, 0, 2*len(list))
	for _, item := range list {
		pair, ok := item.([]any)
		if !ok || len(pair) != 2 {
			return nil, cpython.BadValue(errors.New("wsgi: each header must be a [name, value] pair"))
		}
		name, ok1 := pair[0].([]byte)
		value, ok2 := pair[1].([]byte)
		if !ok1 || !ok2 {
			return nil, cpython.BadValue(errors.New("wsgi: header names and values must be bytes"))
		}
		fields = append(fields, string(name), string(value))
	}
	return fields, nil
}

// Done implements cpython.ASGIRequest: the app returned or raised.
func (x *asgiExchange) Done(exc *cpython.Exception) {
	x.mu.Lock()
	x.events = append(x.events, asgiEvent{kind: "done", exc: exc})
	x.signal()
	x.mu.Unlock()
}

// serveASGI runs an HTTP request through the ASGI app. It returns once
// the app returned or its response is complete, reporting whether the
// connection must be aborted. When the app's task runs on past its
// response (Starlette's BackgroundTasks), rest is what remains to do: wait
// for the task, bounded by RequestTimeout, and log how it ended; the
// request must keep its slot until rest returns.
func (h *Handler) serveASGI(g *appGen, w http.ResponseWriter, r *http.Request, scope []byte, o *outcome) (abort bool, rest func()) {
	loop, slot := g.pickASGI()
	defer g.done(slot)
	x := &asgiExchange{loopConn: newLoopConn(h, loop, w, r)}
	x.events = x.evbuf[:0]
	x.act = o.act
	var first []byte
	if r.ContentLength == 0 {
		first = emptyRequestMessage
		x.bodyEOF = true
	}
	if d := h.cfg.requestTimeout; d > 0 {
		x.deadline = time.Now().Add(d)
	}
	handle := cpython.Register(cpython.ASGIRequest(x))
	if o.act != nil {
		o.act.task.Store(uint64(handle)) // the live view finds its task by handle (host.py)
	}
	defer func() {
		if rest == nil { // also after a panic of our own
			x.conn.Release()
			handle.Release()
		}
	}()
	conn, wait, err := loop.Start(handle, scope, first)
	h.m.gilWait.observe(wait)
	if err != nil {
		o.status = http.StatusInternalServerError
		h.internalError(w, err)
		return false, nil
	}
	x.conn = conn
	h.m.asgiTasks.Add(1)
	defer func() {
		if rest == nil {
			h.m.asgiTasks.Add(-1)
		}
	}()
	abort = x.serve()
	if !x.settleBody() {
		abort = true
	}
	o.status, o.sent, o.received = x.status, x.written, x.bodyRead
	if x.runsOn {
		// From here on the exchange never touches w or r.Body.
		x.detached.Store(true)
		rest = func() {
			defer h.m.asgiTasks.Add(-1)
			defer handle.Release()
			defer x.conn.Release()
			x.afterResponse()
		}
	}
	return abort, rest
}

// settleBody leaves the request body as net/http needs it when the
// handler returns: no read of ours in flight, and, in full duplex mode
// (where net/http leaves the rest to the handler), the unread remainder
// read and dropped so the connection can serve the next request (see
// exchange.drainBody). It reports false when the connection must be
// closed instead.
func (x *asgiExchange) settleBody() bool {
	if x.reading {
		// A background read: end it now rather than race net/http.
		_ = x.controller().SetReadDeadline(time.Unix(1, 0))
		select {
		case <-x.bodyCh:
		case <-time.After(time.Second):
			return false
		}
		x.reading = false
		_ = x.controller().SetReadDeadline(time.Time{})
		if !x.finished {
			x.bodyEOF = true // the connection is closed: the rest is dropped
			return false
		}
		// The response is whole: drop the rest of the body below, as
		// when no read was in flight.
	}
	if !x.duplex || x.bodyEOF {
		return true
	}
	if x.r.ContentLength >= 0 && x.r.ContentLength-x.bodyRead > maxDrain {
		return true // net/http closes the connection cleanly
	}
	lo := leftover{src: x.r.Body, ctrl: x.controller(), timeout: x.h.cfg.bodyReadTimeout}
	return lo.drain()
}

// serve handles the app's messages until it has returned.
func (x *asgiExchange) serve() (abort bool) {
	ctxDone := x.r.Context().Done()
	var graceTimer, timeout <-chan time.Time
	if !x.deadline.IsZero() {
		t := time.NewTimer(time.Until(x.deadline))
		defer t.Stop()
		timeout = t.C
	}
	for !x.done {
		if x.finished {
			// The client has the whole response; the app's task runs
			// on (serveASGI hands the rest to afterResponse).
			x.runsOn = true
			return x.shortBody()
		}
		select {
		case <-timeout:
			return x.timedOut()
		case <-x.notify:
		case c := <-x.bodyCh:
			x.reading = false
			x.deliverBody(c)
			if x.cancelled && !x.stalled && x.werr == nil {
				x.clientGone()
				graceTimer = time.After(disconnectGrace)
			}
		case <-ctxDone:
			ctxDone = nil
			if x.reading {
				// A body read that fails (a read deadline, say) cancels
				// the request's context too: let the read's own result
				// say what happened, which may be a stall, not a client
				// gone.
				x.cancelled = true
				break
			}
			x.clientGone()
			graceTimer = time.After(disconnectGrace)
		case <-graceTimer:
			x.h.cfg.logger.Warn("wsgi: the ASGI app kept running after the client left; not waiting for it",
				"path", x.r.URL.Path)
			return true
		}
		x.step()
	}
	return x.finish()
}

// clientGone records that the client left: send() raises from now on.
func (x *asgiExchange) clientGone() {
	x.gone.Store(true)
	x.werr = errClientGone
}

// timedOut ends a request past RequestTimeout: 504 (or a cut response),
// and the app's task is cancelled.
func (x *asgiExchange) timedOut() (abort bool) {
	x.gone.Store(true)
	x.step() // what the app sent so far
	x.a.Cancel(x.conn)
	x.h.cfg.logger.Error("wsgi: request timed out; the app's task was cancelled",
		"timeout", x.h.cfg.requestTimeout, "method", x.r.Method, "path", x.r.URL.Path)
	x.h.m.timeouts.Add(1)
	if x.sent {
		return !x.finished
	}
	x.status = http.StatusGatewayTimeout
	x.w.Header().Set("Connection", "close")
	plainError(x.w, http.StatusGatewayTimeout, "request timed out")
	return false
}

// step processes queued events and waiting receive() calls.
func (x *asgiExchange) step() {
	x.mu.Lock()
	events := x.events
	x.events = nil
	x.mu.Unlock()
	for _, ev := range events {
		x.handle(ev)
	}
	if x.sent && x.werr == nil && !x.finished {
		x.act.setState(stateWriting)
		if err := x.flush(); err != nil {
			x.werr = err
		}
		x.act.setState(stateInPython)
	}
	if x.pendingWants() > 0 {
		x.answerWants()
	}
}

// answerWants gives a waiting receive() its message: the next body chunk
// (read in the background), or http.disconnect once the client left or
// the response is over.
func (x *asgiExchange) answerWants() {
	if !x.bodyEOF && x.werr == nil {
		if !x.reading {
			x.reading = true
			x.controller() // made here: readBody uses it from its goroutine
			if x.bodyCh == nil {
				x.bodyCh = make(chan bodyChunk, 1) // most requests never read a body
			}
			go x.readBody()
		}
		return
	}
	if x.werr != nil || x.finished {
		x.answerAll(httpDisconnect)
	}
}

var httpDisconnect = map[string]any{"type": "http.disconnect"}

func (x *asgiExchange) readBody() {
	buf := make([]byte, asgiReadSize)
	t := x.h.cfg.bodyReadTimeout
	if t > 0 {
		_ = x.ctrl.SetReadDeadline(time.Now().Add(t))
	}
	n, err := io.ReadAtLeast(x.r.Body, buf, 1)
	if t > 0 {
		_ = x.ctrl.SetReadDeadline(time.Time{})
	}
	x.bodyCh <- bodyChunk{data: buf[:n], err: err}
}

func (x *asgiExchange) deliverBody(c bodyChunk) {
	x.tookWant()
	x.bodyRead += int64(len(c.data))
	if c.err != nil && !errors.Is(c.err, io.EOF) {
		// A reset, a stall or an oversized body: to the app, the client
		// is gone.
		x.stalled = errors.Is(c.err, os.ErrDeadlineExceeded)
		x.h.cfg.logger.Info("wsgi: reading the request body", "error", bodyError(c.err), "path", x.r.URL.Path)
		x.bodyEOF = true
		x.werr = errClientGone
		x.gone.Store(true)
		_ = x.a.Deliver(x.conn, httpDisconnect)
		return
	}
	x.bodyEOF = c.err != nil || (x.r.ContentLength >= 0 && x.bodyRead >= x.r.ContentLength)
	_ = x.a.Deliver(x.conn, map[string]any{"type": "http.request", "body": c.data, "more_body": !x.bodyEOF})
}

// handle applies one event to the response.
func (x *asgiExchange) handle(ev asgiEvent) {
	switch ev.kind {
	case "http.response.start":
		// Held until the first body message, as the ASGI spec asks: an
		// app that fails before it still gets a clean 500.
		x.head, x.started = ev.head, true
	case "http.response.body":
		if !x.sent {
			x.sendHead()
		}
		x.writeBody(ev.body)
		x.wroteOut(len(ev.body))
		if !ev.more && !x.trailers {
			x.finished = true
		}
	case "http.response.trailers":
		for k, v := range ev.header {
			x.w.Header()[http.TrailerPrefix+k] = v
		}
		if !ev.more {
			x.finished = true
		}
	case "http.response.early_hint":
		if !x.sent && x.werr == nil { // too late once the head is out
			sendEarlyHints(x.w, x.r, ev.links)
		}
	case "http.response.pathsend":
		if !x.sent {
			x.sendHead()
		}
		x.sendFile(ev.path)
		x.finished = true
	case "done":
		x.done = true
		x.exc = ev.exc
	}
}

func (x *asgiExchange) sendHead() {
	x.sent = true
	hdr := x.w.Header()
	for k, v := range x.head.header {
		hdr[k] = v // a Trailer header declares trailers to net/http
	}
	if _, ok := x.head.header["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // no sniffing
	}
	st := x.head.status
	x.status = st
	x.noBody = x.r.Method == http.MethodHead || st == http.StatusNoContent || st == http.StatusNotModified
	if x.r.ContentLength != 0 && !x.bodyEOF {
		x.duplex = x.controller().EnableFullDuplex() == nil
	}
	x.w.WriteHeader(st)
	if x.trailers {
		// Trailers need a chunked body: send the head now, before
		// net/http could choose a Content-Length (undeclared trailers
		// are sent with http.TrailerPrefix).
		_ = x.flush()
	}
}

func (x *asgiExchange) controller() *http.ResponseController {
	if x.ctrl == nil {
		x.ctrl = http.NewResponseController(x.w)
	}
	return x.ctrl
}

func (x *asgiExchange) flush() error {
	err := x.controller().Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

func (x *asgiExchange) writeBody(p []byte) {
	if x.werr != nil || x.noBody || len(p) == 0 {
		return
	}
	p = x.clip(p, x.head.contentLength, x.h.cfg.logger, x.r.URL.Path)
	x.act.setState(stateWriting)
	n, err := x.w.Write(p)
	x.act.setState(stateInPython)
	x.written += int64(n)
	if err != nil {
		x.werr = err
		x.gone.Store(true)
	}
}

// sendFile implements http.response.pathsend with sendfile(2) through
// io.Copy.
func (x *asgiExchange) sendFile(path string) {
	f, err := os.Open(path)
	if err != nil {
		x.h.cfg.logger.Error("wsgi: http.response.pathsend", "error", err)
		x.werr = err
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		x.h.cfg.logger.Error("wsgi: http.response.pathsend: not a regular file", "path", path)
		x.werr = errors.New("not a regular file")
		return
	}
	if x.noBody {
		return
	}
	n := st.Size()
	if cl := x.head.contentLength; cl >= 0 && cl < n {
		n = cl
	}
	x.act.setState(stateWriting)
	copied, err := io.Copy(x.w, io.LimitReader(f, n))
	x.act.setState(stateInPython)
	x.written += copied
	if err != nil {
		x.werr = err
	}
}

// finish reports how the request ended, after the app returned.
func (x *asgiExchange) finish() (abort bool) {
	x.gone.Store(true)
	var attrs []any // made only to log
	var err error
	if x.stalled && !x.sent {
		x.h.cfg.logger.Info("wsgi: request body timed out", "method", x.r.Method, "path", x.r.URL.Path)
		x.h.m.bodyTimeouts.Add(1)
		x.status = http.StatusRequestTimeout
		// Close the connection: the rest of the body is not coming.
		x.w.Header().Set("Connection", "close")
		plainError(x.w, http.StatusRequestTimeout, "request body timed out")
		return false
	}
	switch {
	case x.exc != nil:
		x.h.m.exceptions.Add(1)
		pe := newPythonError(x.exc)
		err = pe
		attrs = []any{"error", pe.Error(), "traceback", pe.Traceback}
	case !x.started:
		err = errors.New("wsgi: the ASGI app returned without starting a response")
	case !x.finished && x.werr == nil:
		err = errors.New("wsgi: the ASGI app returned before completing its response")
	}
	if err == nil {
		return x.shortBody()
	}
	if attrs == nil {
		attrs = []any{"error", err.Error()}
	}
	attrs = append([]any{"method", x.r.Method, "path", x.r.URL.Path}, attrs...)
	switch {
	case x.werr != nil:
		x.h.cfg.logger.Info("wsgi: client disconnected; the app stopped with an error", attrs...)
		return x.sent
	case x.finished:
		// The response went out whole before the app raised (Starlette's
		// error middleware sends a 500, then raises again): keep it.
		x.h.cfg.logger.Error("wsgi: app raised after completing its response", attrs...)
		return false
	case x.sent:
		x.h.cfg.logger.Error("wsgi: app failed after the response started; aborting the connection", attrs...)
		return true
	}
	x.h.cfg.logger.Error("wsgi: app failed", attrs...)
	x.status = http.StatusInternalServerError
	x.h.internalError(x.w, err)
	return false
}

// shortBody reports (and logs) a complete response whose body is shorter
// than its Content-Length: the connection must be aborted.
func (x *asgiExchange) shortBody() bool {
	if cl := x.head.contentLength; !x.noBody && cl >= 0 && x.written < cl && x.werr == nil {
		x.h.cfg.logger.Error("wsgi: app sent less than its Content-Length; closing the connection",
			"content_length", cl, "sent", x.written, "path", x.r.URL.Path)
		return true
	}
	return false
}

// afterResponse waits for an app's task that runs on after its response
// was completed (and ServeHTTP returned): receive() answers
// http.disconnect, RequestTimeout cancels the task, and an exception is
// logged. It never touches the ResponseWriter or the request body.
func (x *asgiExchange) afterResponse() {
	var timeout <-chan time.Time
	if !x.deadline.IsZero() {
		t := time.NewTimer(time.Until(x.deadline))
		defer t.Stop()
		timeout = t.C
	}
	for !x.done {
		select {
		case <-x.notify:
		case <-timeout:
			x.gone.Store(true)
			x.a.Cancel(x.conn)
			x.h.m.timeouts.Add(1)
			x.h.cfg.logger.Error("wsgi: request timed out after its response; the app's task was cancelled",
				"timeout", x.h.cfg.requestTimeout, "method", x.r.Method, "path", x.r.URL.Path)
			return
		}
		x.mu.Lock()
		events := x.events
		x.events = nil
		x.mu.Unlock()
		for _, ev := range events {
			if ev.kind == "done" { // the loop refuses any other message now
				x.done, x.exc = true, ev.exc
			}
		}
		x.answerAll(httpDisconnect)
	}
	x.gone.Store(true)
	if x.exc != nil {
		x.h.m.exceptions.Add(1)
		pe := newPythonError(x.exc)
		x.h.cfg.logger.Error("wsgi: app raised after completing its response",
			"method", x.r.Method, "path", x.r.URL.Path, "error", pe.Error(), "traceback", pe.Traceback)
	}
}

// buildScope makes the ASGI scope of a request, value-encoded for the
// loop (written directly: this runs per request). root_path is the mount
// point (WSGI's SCRIPT_NAME); path is the full path, which includes it, as
// the spec says, or, with relative, only what follows it (WSGI's
// PATH_INFO), for Starlette before 0.33, which routes on path as is.
// subprotocols is set for a WebSocket.
func buildScope(dst []byte, r *http.Request, prefix string, kind string, p peer, relative bool,
	extra map[string]string, subprotocols []string) ([]byte, int, string) {
	scriptName, pathInfo, status, reason := splitPath(r, prefix)
	if status != 0 {
		return nil, status, reason
	}
	path := pathInfo
	if !relative {
		path = scriptName + pathInfo
	}
	scheme := "http"
	if kind == "websocket" {
		scheme = "ws"
	}
	if p.https {
		scheme += "s"
	}
	name, port, portNum := serverAddr(r)
	if port != "" {
		portNum, _ = strconv.Atoi(port)
	}
	ctxEnv, _ := r.Context().Value(environCtxKey{}).(map[string]string)
	hasEnv := len(extra) > 0 || len(ctxEnv) > 0

	n := 11 // the keys every scope has
	if kind == "http" {
		n += 2 // method, extensions
	} else {
		n += 2 // subprotocols, extensions
	}
	if p.addr != "" {
		n++ // client
	}
	var e cpython.Encoder
	e.B = dst
	e.Dict(n)
	e.Known(asgiBase + sType)
	scopeStr(&e, kind)
	e.Known(asgiBase + sASGI)
	e.Dict(2)
	e.Known(asgiBase + sVersion)
	e.Known(asgiBase + sV30)
	e.Known(asgiBase + sSpecVersion)
	e.Known(asgiBase + sV24)
	e.Known(asgiBase + sHTTPVersion)
	scopeStr(&e, httpVersion(r))
	e.Known(asgiBase + sScheme)
	scopeStr(&e, scheme)
	e.Known(asgiBase + sPath)
	e.Str(path)
	e.Known(asgiBase + sRawPath)
	e.Bytes(rawPathAfter(r, path))
	e.Known(asgiBase + sQueryString)
	e.Bytes(r.URL.RawQuery)
	e.Known(asgiBase + sRootPath)
	e.Str(scriptName)
	e.Known(asgiBase + sHeaders)
	count := 0
	for _, values := range r.Header {
		count += len(values)
	}
	if r.Host != "" {
		count++
	}
	if len(r.TransferEncoding) > 0 {
		count++ // net/http moved it out of r.Header; apps expect it
	}
	e.List(count)
	if r.Host != "" {
		e.List(2)
		e.Bytes("host")
		e.Bytes(r.Host)
	}
	for name, values := range r.Header {
		lower := lowerHeaderName(name)
		for _, v := range values {
			e.List(2)
			e.Bytes(lower)
			e.Bytes(v)
		}
	}
	if len(r.TransferEncoding) > 0 {
		e.List(2)
		e.Bytes("transfer-encoding")
		e.Bytes(strings.Join(r.TransferEncoding, ", "))
	}
	e.Known(asgiBase + sServer)
	e.List(2)
	if path, unix := unixSocket(r); unix {
		// The spec's [path, None] for a Unix socket.
		e.Str(path)
		_ = e.Value(nil)
	} else {
		e.Str(name)
		e.Int(int64(portNum))
	}
	e.Known(asgiBase + sState)
	e.Dict(0) // replaced by the lifespan state on the loop
	if p.addr != "" {
		pn, _ := strconv.Atoi(p.port)
		e.Known(asgiBase + sClient)
		e.List(2)
		e.Str(p.addr)
		e.Int(int64(pn))
	}
	exts := 0
	if hasEnv {
		exts++
	}
	if kind == "http" {
		e.Known(asgiBase + sMethod)
		scopeStr(&e, r.Method)
		e.Known(asgiBase + sExtensions)
		e.Dict(3 + exts)
		e.Known(asgiBase + sEarlyHint)
		e.Dict(0)
		e.Known(asgiBase + sTrailers)
		e.Dict(0)
		e.Known(asgiBase + sPathsend)
		e.Dict(0)
	} else {
		e.Known(asgiBase + sSubprotocols)
		e.List(len(subprotocols))
		for _, s := range subprotocols {
			e.Str(s)
		}
		e.Known(asgiBase + sExtensions)
		e.Dict(1 + exts)
		e.Known(asgiBase + sWSHTTPResponse)
		e.Dict(0)
	}
	if hasEnv {
		// What a WSGI app would find in its environ beyond the CGI keys:
		// Options.Env, then WithEnviron's values (the user of BasicAuth or
		// of a Go auth middleware: REMOTE_USER, AUTH_TYPE).
		env := make(map[string]string, len(extra)+len(ctxEnv))
		for _, m := range []map[string]string{extra, ctxEnv} {
			for k, v := range m {
				if k != "" && !strings.HasPrefix(k, "wsgi.") {
					env[k] = v
				}
			}
		}
		e.Known(asgiBase + sEnviron)
		e.Dict(len(env))
		for k, v := range env {
			e.Str(k)
			e.Str(v)
		}
	}
	return e.B, 0, ""
}

// asgiKnownStrs are the scope's keys and its common values, appended to
// knownEnvironKeys as known strings (interpreter.go): a scope refers to
// them by id and C returns the same interned str each time (no copy, the
// hash computed once; the app's scope["type"] finds its key by identity).
var asgiKnownStrs = []string{
	// The keys and fixed values buildScope writes, at their s* index.
	sType: "type", sASGI: "asgi", sVersion: "version", sSpecVersion: "spec_version",
	sHTTPVersion: "http_version", sScheme: "scheme", sPath: "path", sRawPath: "raw_path",
	sQueryString: "query_string", sRootPath: "root_path", sHeaders: "headers", sServer: "server",
	sState: "state", sClient: "client", sMethod: "method", sExtensions: "extensions",
	sSubprotocols: "subprotocols", sEnviron: "environ", sV30: "3.0", sV24: "2.4",
	sEarlyHint: "http.response.early_hint", sTrailers: "http.response.trailers",
	sPathsend: "http.response.pathsend", sWSHTTPResponse: "websocket.http.response",
	// After them, values found through asgiKnownIDs.
	"http", "websocket", "1.0", "1.1", "2", "3", "https", "ws", "wss",
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
}

// Indexes into asgiKnownStrs of the keys and fixed values buildScope writes.
const (
	sType = iota
	sASGI
	sVersion
	sSpecVersion
	sHTTPVersion
	sScheme
	sPath
	sRawPath
	sQueryString
	sRootPath
	sHeaders
	sServer
	sState
	sClient
	sMethod
	sExtensions
	sSubprotocols
	sEnviron
	sV30
	sV24
	sEarlyHint
	sTrailers
	sPathsend
	sWSHTTPResponse
)

// asgiBase is the id of asgiKnownStrs[0] among the known strings.
var asgiBase = len(knownEnvironKeys)

// knownStrs is what Initialize interns: the environ keys, then asgiKnownStrs.
var knownStrs = append(knownEnvironKeys[:len(knownEnvironKeys):len(knownEnvironKeys)], asgiKnownStrs...)

// asgiKnownIDs maps a string of asgiKnownStrs to its id in knownStrs.
var asgiKnownIDs = func() map[string]int {
	m := make(map[string]int, len(asgiKnownStrs))
	for i, k := range asgiKnownStrs {
		if _, dup := m[k]; dup || slices.Contains(knownEnvironKeys, k) {
			panic("wsgi: duplicate known string " + k)
		}
		m[k] = asgiBase + i
	}
	return m
}()

// scopeStr writes s as a known string if it is one.
func scopeStr(e *cpython.Encoder, s string) {
	if id, ok := asgiKnownIDs[s]; ok {
		e.Known(id)
		return
	}
	e.Str(s)
}

// scopeBufs holds the buffers scopes are encoded into: one per request
// otherwise, and Start has decoded it by the time the request ends.
var scopeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// putScopeBuf returns a scope's buffer to scopeBufs, unless a request with
// many headers grew it past what most requests need.
func putScopeBuf(buf *[]byte, scope []byte) {
	if cap(scope) > 8<<10 {
		return
	}
	if scope != nil { // else refused before encoding: buf is as it was
		*buf = scope[:0]
	}
	scopeBufs.Put(buf)
}

// lowerHeaderName lower-cases a canonical header name, without
// allocating for the common ones.
func lowerHeaderName(name string) string {
	if l, ok := lowerHeaderNames[name]; ok {
		return l
	}
	return strings.ToLower(name)
}

var lowerHeaderNames = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "Origin", "Referer", "User-Agent",
		"Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol",
		"Sec-Websocket-Extensions", "X-Forwarded-For", "X-Forwarded-Proto", "X-Requested-With",
		"If-None-Match", "If-Modified-Since", "Upgrade-Insecure-Requests", "Sec-Fetch-Dest",
		"Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Dnt", "Pragma", "Priority"} {
		m[k] = strings.ToLower(k)
	}
	return m
}()

func httpVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMajor == 3:
		return "3"
	case r.ProtoMinor == 0:
		return "1.0"
	}
	return "1.1"
}

// rawPathAfter is the raw (still percent-encoded) form of path, a decoded
// tail of the request's path: the same tail of its escaped path.
func rawPathAfter(r *http.Request, pathInfo string) string {
	escaped := r.URL.EscapedPath()
	if r.RequestURI != "" && !strings.HasPrefix(r.RequestURI, "*") {
		if p, _, _ := strings.Cut(r.RequestURI, "?"); strings.HasPrefix(p, "/") {
			escaped = p
		}
	}
	// Walk back from the end: each decoded byte of pathInfo is one raw
	// byte, or a %XX escape.
	i, j := len(escaped), len(pathInfo)
	for j > 0 && i > 0 {
		if i >= 3 && escaped[i-3] == '%' {
			i -= 3
		} else {
			i--
		}
		j--
	}
	return escaped[i:]
}

// emptyRequestMessage is the http.request of a request without a body.
var emptyRequestMessage = mustEncode(map[string]any{"type": "http.request", "body": []byte{}, "more_body": false})

func mustEncode(v any) []byte {
	b, err := cpython.Encode(v)
	if err != nil {
		panic(err)
	}
	return b
}

// serveASGIHTTP is ServeHTTP for an ASGI app.
func (h *Handler) serveASGIHTTP(w http.ResponseWriter, r *http.Request, o *outcome) {
	kind := "http"
	if isWebSocket(r) {
		kind = "websocket"
	}
	var subprotocols []string
	if kind == "websocket" {
		subprotocols = requestSubprotocols(r)
	}
	buf := scopeBufs.Get().(*[]byte)
	scope, status, reason := buildScope((*buf)[:0], r, h.cfg.prefix, kind, h.cfg.trusted.peer(r), h.relativePaths, h.cfg.env, subprotocols)
	defer putScopeBuf(buf, scope) // the loop decoded it in Start: nothing keeps it
	if status != 0 {
		h.cfg.logger.Debug("wsgi: request refused", "status", status, "reason", reason, "path", r.URL.Path)
		o.status = status
		plainError(w, status, http.StatusText(status))
		return
	}
	if o.status = h.admit(w, r); o.status != 0 {
		return
	}
	o.act.setState(stateInPython)
	g := h.current()
	var abort bool
	var rest func()
	func() {
		defer func() { // even if our own code panics
			if rest == nil {
				g.unref()
				<-h.slots
			}
		}()
		switch {
		case g.asgi == nil:
			o.status = http.StatusInternalServerError
			h.internalError(w, g.err)
		case kind == "websocket":
			sw := &statusWriter{ResponseWriter: w}
			h.serveASGIWebSocket(g, sw, r, scope, o.act)
			o.status = sw.status
		default:
			abort, rest = h.serveASGI(g, w, r, scope, o)
		}
	}()
	if rest != nil {
		// The task outlives the response: it keeps the slot (Stats
		// counts it busy) and Shutdown waits for it.
		h.inflight.Add(1)
		act := o.act
		act.hold()  // the live view shows the task until it ends
		run := rest // not rest itself: captured, it would be on the heap for every request
		go func() {
			defer func() {
				h.release(act, false)
				g.unref()
				<-h.slots
				h.inflight.Done()
			}()
			run()
		}()
	}
	if abort {
		panic(http.ErrAbortHandler)
	}
}
