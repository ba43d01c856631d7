package wsgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// exchange is one request on its way through the app. The C layer calls
// its cpython.Request methods while the app runs; ServeHTTP drives the
// body steps. Everything runs on the request's goroutine.
type exchange struct {
	h    *Handler
	act  *activeRequest // the live view's record; nil if unobserved
	w    http.ResponseWriter
	r    *http.Request
	ctrl *http.ResponseController // made on first flush

	head    responseHead
	started bool // start_response accepted
	sent    bool // status and headers written to w
	noBody  bool // HEAD, 204 or 304: body bytes are dropped
	sentBody
	werr   error // writing to the client failed: the client is gone
	duplex bool  // full duplex enabled: the app may read after writing
	// over: the response is settled and ServeHTTP may have returned; the
	// app's close() may still run, but w and the request body are
	// net/http's again. Atomic: app threads may call Context.
	over atomic.Bool

	body    bodyReader
	pending []byte // a wsgi.input result waiting for Take
	// directLen is the size of a wsgi.input read that Take reads from the
	// client into the app's memory; 0 if none is waiting.
	directLen int
	errLine   []byte // wsgi.errors text not yet ended by "\n"

	// Kept across requests when the exchange is pooled.
	fields []string    // start_response arguments, unpacked
	hdrMap http.Header // reused as head.header
}

// maxPooledBody is the largest body buffer an exchange keeps for reuse.
const maxPooledBody = 64 << 10

// reset prepares a pooled exchange for a new request.
func (x *exchange) reset(h *Handler, w http.ResponseWriter, r *http.Request) {
	buf := x.body.buf[:0]
	if cap(buf) > maxPooledBody {
		buf = nil
	}
	*x = exchange{h: h, w: w, r: r, fields: x.fields[:0], hdrMap: x.hdrMap}
	x.body = bodyReader{src: r.Body, buf: buf, left: r.ContentLength, directMin: directMin}
	if h != nil && h.cfg.bodyReadTimeout > 0 && r.ContentLength != 0 {
		x.body.timeout = h.cfg.bodyReadTimeout
		x.body.setDeadline = func(t time.Time) error { return x.controller().SetReadDeadline(t) }
	}
}

func (x *exchange) controller() *http.ResponseController {
	if x.ctrl == nil {
		x.ctrl = http.NewResponseController(x.w)
	}
	return x.ctrl
}

// stateError is an error raised in the app as RuntimeError: a call made
// at the wrong time rather than with a wrong value.
type stateError string

func (e stateError) Error() string { return string(e) }
func (stateError) StateError()     {}

var errClientGone = errors.New("wsgi: client disconnected")

// errResponseOver is raised by what close() may no longer do.
var errResponseOver = stateError("wsgi: the response is complete: start_response, write() and wsgi.input can no longer be used")

// StartResponse implements start_response (PEP 3333).
func (x *exchange) StartResponse(packed string, nheaders int, hasExcInfo bool) (int, string) {
	if x.over.Load() {
		return cpython.StartResponseState, string(errResponseOver)
	}
	if x.started && !hasExcInfo {
		return cpython.StartResponseState, "wsgi: start_response called a second time without exc_info"
	}
	if hasExcInfo && x.sent {
		return cpython.StartResponseReraise, ""
	}
	fields, rest := cpython.UnpackFields(packed, x.fields[:0])
	x.fields = fields
	if len(fields) != 1+2*nheaders || rest != "" {
		return cpython.StartResponseInvalid, "wsgi: malformed start_response arguments"
	}
	if x.hdrMap == nil {
		x.hdrMap = make(http.Header, nheaders)
	}
	head, err := parseResponseHeadInto(x.hdrMap, fields[0], fields[1:])
	if err != nil {
		return cpython.StartResponseInvalid, err.Error()
	}
	x.head, x.started = head, true
	return cpython.StartResponseOK, ""
}

// Write implements the write() callable that start_response returns.
func (x *exchange) Write(p []byte) error {
	if x.over.Load() {
		return errResponseOver
	}
	if !x.started {
		return stateError("wsgi: write() called before start_response")
	}
	return x.writeBody(p, true)
}

// EarlyHints implements wsgi.early_hints: a 103 response with these
// headers, validated like the final ones, while the final one has not
// started.
func (x *exchange) EarlyHints(packed string, nheaders int) error {
	if x.over.Load() || x.sent {
		return stateError("wsgi: early hints after the response started")
	}
	fields, rest := cpython.UnpackFields(packed, nil)
	if len(fields) != 2*nheaders || rest != "" {
		return cpython.BadValue(errors.New("wsgi: malformed early hints"))
	}
	for i := 0; i < len(fields); i += 2 {
		if err := validateHeader(fields[i], fields[i+1]); err != nil {
			return cpython.BadValue(err)
		}
	}
	if x.werr != nil {
		return errClientGone
	}
	sendEarlyHints(x.w, x.r, fields)
	return nil
}

// sendEarlyHints writes a 103 with fields (name, value, ...), unless the
// client speaks HTTP/1.0 (which has no 1xx responses). net/http sends the
// header map as it is, so the hints go in and come out again: they hint
// at this response, they are not part of the final one.
func sendEarlyHints(w http.ResponseWriter, r *http.Request, fields []string) {
	if !r.ProtoAtLeast(1, 1) || len(fields) == 0 {
		return
	}
	hdr := w.Header()
	saved := make(map[string][]string, len(fields)/2)
	for i := 0; i < len(fields); i += 2 {
		k := textproto.CanonicalMIMEHeaderKey(fields[i])
		if _, ok := saved[k]; !ok {
			saved[k] = hdr[k]
			delete(hdr, k)
		}
		hdr[k] = append(hdr[k], fields[i+1])
	}
	w.WriteHeader(http.StatusEarlyHints)
	for k, v := range saved {
		if v == nil {
			delete(hdr, k)
		} else {
			hdr[k] = v
		}
	}
}

// Read implements wsgi.input's operations. A large read of a declared
// body is left to Take, which reads it from the client straight into the
// app's bytes object.
func (x *exchange) Read(op int, n int64) (int64, bool, error) {
	if x.over.Load() {
		return 0, false, errResponseOver
	}
	if op != cpython.ReadLineOp {
		if d := x.body.direct(n); d > 0 {
			x.directLen = d
			return int64(d), true, nil
		}
	}
	var p []byte
	var err error
	if op == cpython.ReadLineOp {
		p, err = x.body.readline(n)
	} else {
		p, err = x.body.read(n)
	}
	x.pending = p
	return int64(len(p)), false, err
}

// Take implements the copy-out half of a wsgi.input operation, or the
// whole of a direct one.
func (x *exchange) Take(dst []byte) (int, error) {
	if x.directLen > 0 {
		x.directLen = 0
		if len(dst) == 0 {
			return 0, nil // the caller gave up; the body stays unread
		}
		return x.body.readFull(dst)
	}
	n := copy(dst, x.pending)
	clear(dst[n:])
	x.pending = nil
	return n, nil
}

// Context is the request's context, for Go functions the app calls. Once
// the response is out net/http cancels it, but close() goes on: it gets
// the values without the cancellation.
func (x *exchange) Context() context.Context {
	if x.over.Load() {
		return context.WithoutCancel(x.r.Context())
	}
	return x.r.Context()
}

// LogErrors implements wsgi.errors: one log record per line.
func (x *exchange) LogErrors(text []byte) {
	x.errLine = append(x.errLine, text...)
	for {
		i := bytes.IndexByte(x.errLine, '\n')
		if i < 0 {
			break
		}
		x.logAppLine(x.errLine[:i])
		x.errLine = x.errLine[i+1:]
	}
	if len(x.errLine) == 0 {
		x.errLine = nil
	}
}

func (x *exchange) flushErrors() {
	if len(x.errLine) > 0 {
		x.logAppLine(x.errLine)
		x.errLine = nil
	}
}

func (x *exchange) logAppLine(line []byte) {
	x.h.cfg.logger.LogAttrs(context.Background(), slog.LevelInfo, string(bytes.TrimRight(line, "\r")),
		slog.String("stream", "wsgi.errors"))
}

// sentBody counts the body bytes written to the client and keeps them
// within the app's Content-Length, for the WSGI and ASGI writers alike.
type sentBody struct {
	written int64 // body bytes written
	cut     bool  // excess over Content-Length was dropped (logged once)
	status  int   // the status written, for the metrics; 0 until then
}

// clip returns the part of p that fits in Content-Length cl (-1: none
// declared), logging the first excess.
func (b *sentBody) clip(p []byte, cl int64, logger *slog.Logger, path string) []byte {
	if cl < 0 {
		return p
	}
	if left := cl - b.written; int64(len(p)) > left {
		p = p[:left]
		if !b.cut {
			b.cut = true
			logger.Warn("wsgi: app sent more than its Content-Length; the excess was dropped",
				"content_length", cl, "path", path)
		}
	}
	return p
}

// writeBody sends body bytes, sending the head first. It drops what goes
// past the app's Content-Length and everything for HEAD, 204 and 304.
func (x *exchange) writeBody(p []byte, flush bool) error {
	if x.werr != nil {
		return errClientGone
	}
	if len(p) == 0 {
		return nil // an empty chunk sends nothing, not even the headers
	}
	if !x.sent {
		x.sendHead()
	}
	if x.noBody {
		return nil
	}
	cl := x.head.contentLength
	p = x.clip(p, cl, x.h.cfg.logger, x.r.URL.Path)
	if cl >= 0 {
		flush = flush && x.written+int64(len(p)) < cl
	}
	if len(p) == 0 {
		return nil
	}
	x.act.setState(stateWriting)
	n, err := x.w.Write(p)
	x.written += int64(n)
	if err == nil && flush {
		err = x.flush()
	}
	x.act.setState(stateInPython)
	if err != nil {
		x.werr = err
		return errClientGone
	}
	return nil
}

func (x *exchange) flush() error {
	err := x.controller().Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// sendHead writes the validated status and headers.
func (x *exchange) sendHead() {
	x.sent = true
	hdr := x.w.Header()
	for k, v := range x.head.header {
		hdr[k] = v
	}
	if _, ok := x.head.header["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // a nil entry stops net/http from sniffing one
	}
	st := x.head.status
	x.status = st
	x.noBody = x.r.Method == http.MethodHead || st == http.StatusNoContent || st == http.StatusNotModified
	// A client waiting for "100 Continue" that the app never asked for
	// has sent no body: leave net/http to close the connection instead.
	waiting := !x.body.touched && x.r.Header.Get("Expect") != ""
	if x.r.ContentLength != 0 && !x.body.eof && !waiting {
		// Let the app go on reading the body after the response started
		// (HTTP/1 would otherwise discard the rest of it).
		x.duplex = x.controller().EnableFullDuplex() == nil
	}
	x.w.WriteHeader(st)
}

// maxDrain is how much of a body the app left unread is read and dropped
// so that the connection can serve the next request (net/http's own
// limit for handlers without full duplex).
const maxDrain = 256 << 10

// leftover is what the app left of a request body in full-duplex mode,
// where net/http leaves it to the handler. It is read and dropped after the
// request has given its Python thread back, so that a client that stalls
// mid-body holds a connection, not a thread.
type leftover struct {
	src     io.Reader
	ctrl    *http.ResponseController
	timeout time.Duration // Options.BodyReadTimeout; 0: none
}

// leftover reports what must be drained, or nil.
func (x *exchange) leftover() *leftover {
	if !x.duplex || x.body.eof || x.body.err != nil {
		return nil
	}
	if x.body.left > maxDrain {
		// net/http does not read a declared remainder this big: it closes
		// the connection after the response, cleanly.
		return nil
	}
	return &leftover{src: x.body.src, ctrl: x.controller(), timeout: x.h.cfg.bodyReadTimeout}
}

// drain sends the response, then reads up to maxDrain bytes of the rest of
// the body. It reports false when the connection must be closed instead
// (more than that, or the client stalled).
func (l *leftover) drain() bool {
	_ = l.ctrl.Flush() // the client has its answer whatever happens next
	if l.timeout > 0 {
		_ = l.ctrl.SetReadDeadline(time.Now().Add(l.timeout))
		defer func() { _ = l.ctrl.SetReadDeadline(time.Time{}) }()
	}
	n, err := io.CopyN(io.Discard, l.src, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}

// setLengthIfUnset declares a Content-Length for a body known in full
// before anything was sent, so the connection can be kept alive.
func (x *exchange) setLengthIfUnset(n int64) {
	st := x.head.status
	if x.sent || x.head.contentLength >= 0 || st == http.StatusNoContent || st == http.StatusNotModified {
		return
	}
	x.head.contentLength = n
	x.head.header["Content-Length"] = []string{strconv.FormatInt(n, 10)}
}

// errNoStart is reported when the body ends or starts before the app
// called start_response.
var errNoStart = errors.New("wsgi: the app returned a body without calling start_response")

// serve drives the app's body from its first step to the end of the
// response. It returns true when the connection must be aborted because
// the response cannot be completed correctly. It leaves the body's close()
// to the caller, for after the response is out.
func (x *exchange) serve(call *cpython.Call, st cpython.Step, buf []byte) (abort bool) {
	for {
		switch st.Kind {
		case cpython.Error:
			return x.fail(newPythonError(st.Err))
		case cpython.Done:
			if st.Err != nil {
				x.logCloseError(st.Err)
			}
			return x.complete(buf[:st.Copied])
		case cpython.End:
			return x.complete(nil)
		case cpython.List:
			return x.serveList(st.Views)
		case cpython.File:
			return x.serveFile(st)
		case cpython.Chunk:
			if len(st.Data) > 0 {
				if !x.started {
					return x.fail(errNoStart)
				}
				err := x.writeBody(st.Data, true)
				if err != nil || x.noBody || x.lengthReached() {
					return x.checkLength()
				}
			}
			if x.r.Context().Err() != nil {
				x.werr = errClientGone
				return false
			}
			st = call.Next()
		default:
			return x.fail(fmt.Errorf("wsgi: internal error: unknown step %d", st.Kind))
		}
	}
}

func (x *exchange) lengthReached() bool {
	return x.head.contentLength >= 0 && x.written >= x.head.contentLength
}

// complete sends the last of the body (everything, when nothing was sent
// yet) and checks the response is whole.
func (x *exchange) complete(final []byte) bool {
	if !x.started {
		return x.fail(errNoStart)
	}
	x.setLengthIfUnset(int64(len(final)))
	if len(final) > 0 {
		_ = x.writeBody(final, false)
	} else if !x.sent {
		x.sendHead()
	}
	return x.checkLength()
}

func (x *exchange) serveList(views [][]byte) bool {
	if !x.started {
		return x.fail(errNoStart)
	}
	var total int64
	for _, v := range views {
		total += int64(len(v))
	}
	x.setLengthIfUnset(total)
	for _, v := range views {
		if x.writeBody(v, false) != nil || x.noBody {
			break
		}
	}
	if !x.sent {
		x.sendHead()
	}
	return x.checkLength()
}

// serveFile sends a wsgi.file_wrapper's regular file with io.Copy, which
// net/http turns into sendfile(2).
func (x *exchange) serveFile(st cpython.Step) bool {
	f := os.NewFile(uintptr(st.FD), "wsgi.file_wrapper")
	defer f.Close()
	if !x.started {
		return x.fail(errNoStart)
	}
	remaining := max(st.Size-st.Offset, 0)
	x.setLengthIfUnset(remaining)
	n := remaining
	if cl := x.head.contentLength; cl >= 0 && cl < n {
		n = cl
	}
	if !x.sent {
		x.sendHead()
	}
	if !x.noBody && n > 0 {
		if _, err := f.Seek(st.Offset, io.SeekStart); err != nil {
			x.h.cfg.logger.Error("wsgi: seeking wsgi.file_wrapper file", "error", err)
			return true
		}
		copied, err := io.Copy(x.w, io.LimitReader(f, n))
		x.written += copied
		if err != nil {
			x.werr = err
		}
	}
	return x.checkLength()
}

// checkLength reports a body shorter than the app's Content-Length: the
// connection is aborted so the client cannot mistake it for the whole.
func (x *exchange) checkLength() bool {
	cl := x.head.contentLength
	if x.noBody || cl < 0 || x.written >= cl {
		return false
	}
	if x.werr != nil {
		return true // the client is gone; nothing to report to it
	}
	x.h.cfg.logger.Error("wsgi: app sent less than its Content-Length; closing the connection",
		"content_length", cl, "sent", x.written, "path", x.r.URL.Path)
	return true
}

// finish calls the body's close() if the request is still live.
func (x *exchange) finish(call *cpython.Call) {
	if call.Live() {
		if e := call.Finish(); e != nil {
			x.logCloseError(e)
		}
	}
}

func (x *exchange) logCloseError(e *cpython.Exception) {
	pe := newPythonError(e)
	x.h.m.exception(pe)
	x.h.cfg.logger.Error("wsgi: the app's close() raised an exception",
		"error", pe.Error(), "traceback", pe.Traceback, "path", x.r.URL.Path)
}

// fail reports an error from the app. Before the head was sent the client
// gets a 500; after, the connection must be aborted.
func (x *exchange) fail(err error) (abort bool) {
	attrs := []any{"error", err.Error(), "method", x.r.Method, "path", x.r.URL.Path}
	var pe *PythonError
	if errors.As(err, &pe) {
		attrs = append(attrs, "traceback", pe.Traceback)
		x.h.m.exception(pe)
	}
	switch {
	case x.werr != nil:
		x.h.cfg.logger.Info("wsgi: client disconnected; the app stopped with an error", attrs...)
	case x.sent:
		x.h.cfg.logger.Error("wsgi: app failed after the response started; aborting the connection", attrs...)
	default:
		x.h.cfg.logger.Error("wsgi: app failed", attrs...)
	}
	if x.sent {
		return true
	}
	if x.werr == nil {
		if x.body.stalled {
			// The app failed because the upload stalled: say so.
			// Close the connection: the rest of the body is not coming.
			x.h.m.bodyTimeouts.Add(1)
			x.status = http.StatusRequestTimeout
			x.w.Header().Set("Connection", "close")
			plainError(x.w, http.StatusRequestTimeout, "request body timed out")
		} else {
			x.status = http.StatusInternalServerError
			x.h.internalError(x.w, err)
		}
	}
	return false
}
