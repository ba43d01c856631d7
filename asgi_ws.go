package wsgi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// WebSockets for ASGI apps: wsconn.go does the protocol; this file maps it
// to the ASGI websocket messages.

// wsDefaultReadLimit is the largest message a client may send when
// Options.MaxBodyBytes is zero (uvicorn's default too).
const wsDefaultReadLimit = 16 << 20

// isWebSocket reports whether r asks for a WebSocket upgrade.
func isWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// wsEvent is a message from the app for a WebSocket scope.
type wsEvent struct {
	kind        string
	subprotocol string
	header      http.Header
	data        []byte
	text        bool
	code        int
	reason      string
	head        responseHead // websocket.http.response.start
	more        bool
	exc         *cpython.Exception
}

type wsIncoming struct {
	text bool
	data []byte
	buf  *[]byte // data's buffer from wsReadBufs, if it came from there
	err  error
}

// wsReadBufs holds the buffers client messages are read into; deliver
// gives each back once the message is Python's. Reading with ws.Read
// (io.ReadAll, grown from 512 bytes) cost a 1 KiB message 2.3 KiB of
// allocations. Buffers over maxPooledRead are left to the GC.
var wsReadBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledRead = 64 << 10

// wsExchange is one WebSocket connection served by an ASGI app.
type wsExchange struct {
	loopConn

	// Filled by the loop's runner (Send, Done), under mu.
	events   []wsEvent
	accepted bool // websocket.accept seen
	denying  bool // websocket.http.response.start seen
	closed   bool // websocket.close seen

	ws       *wsConn
	in       chan wsIncoming
	finished bool // the connection is over (closed or denied)
	// closeCode is the websocket.disconnect code once finished: the
	// client's close code, 1006 without one, 1000 for a refused handshake.
	closeCode int
	sentHTTP  bool // a denial response started
	done      bool
	exc       *cpython.Exception
}

func (x *wsExchange) Done(exc *cpython.Exception) {
	x.mu.Lock()
	x.events = append(x.events, wsEvent{kind: "done", exc: exc})
	x.signal()
	x.mu.Unlock()
}

// Start and Body: http.response.* messages are not for a WebSocket scope.
func (x *wsExchange) Start(int64, []string, bool) (bool, error) {
	return false, cpython.BadValue(errors.New(`wsgi: unexpected ASGI message type "http.response.start" for a websocket scope`))
}

func (x *wsExchange) Body([]byte, bool) (bool, error) {
	return false, cpython.BadValue(errors.New(`wsgi: unexpected ASGI message type "http.response.body" for a websocket scope`))
}

// Send takes the app's messages; it runs in whichever goroutine runs the
// loop, so it only validates and queues.
func (x *wsExchange) Send(msg map[string]any) (bool, error) {
	kind, _ := msg["type"].(string)
	if x.gone.Load() {
		return false, fmt.Errorf("wsgi: %s: %w", kind, cpython.ErrGone)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	ev := wsEvent{kind: kind}
	switch kind {
	case "websocket.accept":
		if x.accepted || x.denying || x.closed {
			return false, errors.New("wsgi: websocket.accept at the wrong time")
		}
		ev.subprotocol, _ = msg["subprotocol"].(string)
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
		x.accepted = true
	case "websocket.send":
		if !x.accepted || x.closed {
			return false, errors.New("wsgi: websocket.send before websocket.accept or after websocket.close")
		}
		b, isBytes := msg["bytes"].([]byte)
		s, isText := msg["text"].(string)
		switch {
		case isBytes && !isText:
			ev.data = b
		case isText && !isBytes:
			ev.data, ev.text = []byte(s), true
		default:
			return false, cpython.BadValue(errors.New("wsgi: websocket.send needs exactly one of bytes and text"))
		}
	case "websocket.close":
		if x.closed || x.denying {
			return false, errors.New("wsgi: websocket.close sent twice")
		}
		ev.code = 1000
		if c, ok := msg["code"].(int64); ok {
			ev.code = int(c)
		}
		ev.reason, _ = msg["reason"].(string)
		x.closed = true
	case "websocket.http.response.start":
		if x.accepted || x.denying || x.closed {
			return false, errors.New("wsgi: websocket.http.response.start after the handshake was answered")
		}
		status, ok := msg["status"].(int64)
		if !ok {
			return false, cpython.BadValue(errors.New("wsgi: websocket.http.response.start: status must be an int"))
		}
		fields, err := headerFields(msg["headers"])
		if err != nil {
			return false, err
		}
		head, err := parseResponseHead(strconv.FormatInt(status, 10)+" ", fields)
		if err != nil {
			return false, cpython.BadValue(err)
		}
		ev.head = head
		x.denying = true
	case "websocket.http.response.body":
		if !x.denying {
			return false, errors.New("wsgi: websocket.http.response.body before websocket.http.response.start")
		}
		ev.data, _ = msg["body"].([]byte)
		ev.more, _ = msg["more_body"].(bool)
	default:
		return false, cpython.BadValue(fmt.Errorf("wsgi: unexpected ASGI message type %q for a websocket scope", kind))
	}
	x.events = append(x.events, ev)
	x.signal()
	if kind == "websocket.send" {
		// Backpressure: a slow client makes send() wait, as for HTTP.
		return x.queueLocked(len(ev.data)), nil
	}
	return false, nil
}

// serveASGIWebSocket runs a WebSocket connection through the ASGI app.
// requestSubprotocols lists the subprotocols the client offers.
func requestSubprotocols(r *http.Request) []string {
	var subprotocols []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				subprotocols = append(subprotocols, p)
			}
		}
	}
	return subprotocols
}

var connectMessage = mustEncode(map[string]any{"type": "websocket.connect"})

func (h *Handler) serveASGIWebSocket(g *appGen, w http.ResponseWriter, r *http.Request, scope []byte, act *activeRequest) {
	loop, slot := g.pickASGI()
	defer g.done(slot)
	x := &wsExchange{loopConn: newLoopConn(h, loop, w, r), in: make(chan wsIncoming), closeCode: 1000}
	handle := cpython.Register(cpython.ASGIRequest(x))
	defer handle.Release()
	if act != nil {
		act.task.Store(uint64(handle)) // the live view finds its task by handle (host.py)
	}
	conn, wait, err := loop.Start(handle, scope, connectMessage)
	h.m.gilWait.observe(wait)
	if err != nil {
		h.internalError(w, err)
		return
	}
	x.conn = conn
	defer conn.Release()
	h.m.webSockets.Add(1)
	defer h.m.webSockets.Add(-1)
	x.serve()
}

func (x *wsExchange) serve() {
	var grace <-chan time.Time
	ctxDone := x.r.Context().Done()
	for !x.done {
		var in chan wsIncoming
		if x.pendingWants() > 0 && x.ws != nil && !x.finished {
			in = x.in
		}
		select {
		case <-x.notify:
		case m := <-in:
			x.deliver(m)
		case <-ctxDone:
			ctxDone = nil
			x.disconnect(1006)
			grace = time.After(disconnectGrace)
		case <-grace:
			x.h.cfg.logger.Warn("wsgi: the ASGI app kept running after the WebSocket closed; not waiting for it",
				"path", x.r.URL.Path)
			return
		}
		x.step()
	}
	x.finish()
}

func (x *wsExchange) step() {
	x.mu.Lock()
	events := x.events
	x.events = nil
	x.mu.Unlock()
	for _, ev := range events {
		x.handle(ev)
	}
	if x.finished && x.pendingWants() > 0 {
		x.disconnect(x.closeCode)
	}
}

// deliver hands a client message (or the end of the connection) to a
// waiting receive().
func (x *wsExchange) deliver(m wsIncoming) {
	if m.err != nil {
		x.finished = true
		x.closeCode = closeCode(m.err)
		x.disconnect(x.closeCode)
		return
	}
	x.tookWant()
	msg := map[string]any{"type": "websocket.receive"}
	if m.text {
		msg["text"] = cpython.Text(m.data) // valid UTF-8: read checked it
	} else {
		msg["bytes"] = m.data
	}
	_ = x.a.Deliver(x.conn, msg) // Python has its own copy once it returns
	if m.buf != nil {
		*m.buf = m.data
		putReadBuf(m.buf)
	}
}

// closeCode is the code of the client's close frame that ended a read, or
// 1006 if the connection ended without one (RFC 6455 §7.1.5).
func closeCode(err error) int {
	var ce *wsCloseError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 1006
}

// closeHandshake closes the connection for the app and returns the code of
// the client's answering close frame (RFC 6455 §7.1.5): normally code again,
// but the client may answer with its own (uvicorn reports the same). The
// read goroutine reads that frame, so this waits for its last result,
// which comes within wsCloseWait.
func (x *wsExchange) closeHandshake(code int, reason string) int {
	_ = x.ws.Close(code, reason)
	return closeCode(x.readerEnd())
}

// readerEnd drops the client messages the app will not read and returns
// the read goroutine's last error, which comes soon: the connection is
// closed.
func (x *wsExchange) readerEnd() error {
	for {
		select {
		case m := <-x.in:
			if m.err != nil {
				return m.err
			}
		case <-x.r.Context().Done():
			return x.r.Context().Err()
		}
	}
}

// disconnect answers every waiting receive() with websocket.disconnect;
// later sends raise OSError.
func (x *wsExchange) disconnect(code int) {
	x.gone.Store(true)
	x.answerAll(map[string]any{"type": "websocket.disconnect", "code": int64(code)})
}

func (x *wsExchange) handle(ev wsEvent) {
	switch ev.kind {
	case "websocket.accept":
		limit := int64(wsDefaultReadLimit)
		if x.h.cfg.maxBodyBytes > 0 {
			limit = x.h.cfg.maxBodyBytes
		}
		// Origin checks are the app's (the Origin header is in the scope),
		// as under uvicorn and other ASGI servers.
		ws, status, err := wsAccept(x.w, x.r, handshakeHeader(x.w.Header(), ev.header, ev.subprotocol, x.r),
			x.h.cfg.wsCompression, limit)
		if sw, ok := x.w.(*statusWriter); ok {
			sw.hijacked(status)
		}
		if err != nil {
			x.h.cfg.logger.Info("wsgi: WebSocket handshake failed", "error", err, "path", x.r.URL.Path)
			x.finished, x.closeCode = true, 1006
			x.disconnect(1006)
			return
		}
		x.ws = ws
		go x.read()
	case "websocket.send":
		defer x.wroteOut(len(ev.data))
		if x.ws == nil || x.finished {
			return
		}
		if err := x.ws.WriteMessage(ev.text, ev.data); err != nil {
			x.ws.CloseNow()
			x.finished, x.closeCode = true, 1006
			x.disconnect(1006)
		}
	case "websocket.close":
		if x.ws == nil {
			// Closing before accepting denies the handshake (403).
			if !x.sentHTTP {
				plainError(x.w, http.StatusForbidden, "websocket connection refused")
			}
		} else if !x.finished {
			x.closeCode = x.closeHandshake(ev.code, ev.reason)
		}
		x.finished = true
	case "websocket.http.response.start":
		x.sentHTTP = true
		hdr := x.w.Header()
		for k, v := range ev.head.header {
			hdr[k] = v
		}
		x.w.WriteHeader(ev.head.status)
	case "websocket.http.response.body":
		_, _ = x.w.Write(ev.data)
		if !ev.more {
			x.finished = true
		}
	case "done":
		x.done = true
		x.exc = ev.exc
	}
}

// handshakeHeader is the extra header of the 101 response: what Go
// middleware set on the ResponseWriter and what the app's websocket.accept
// added, without the fields the handshake itself sets, and the app's
// subprotocol if the client offered it.
func handshakeHeader(w, app http.Header, subprotocol string, r *http.Request) http.Header {
	h := w.Clone()
	for k, v := range app {
		h[k] = v
	}
	for _, k := range []string{"Upgrade", "Connection", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions"} {
		delete(h, k)
	}
	if subprotocol != "" && slices.Contains(requestSubprotocols(r), subprotocol) {
		h.Set("Sec-WebSocket-Protocol", subprotocol)
	}
	return h
}

// read passes client messages to serve, one at a time.
func (x *wsExchange) read() {
	for {
		buf := wsReadBufs.Get().(*[]byte)
		text, data, err := x.ws.ReadMessage(*buf)
		if err == nil && text && !utf8.Valid(data) {
			err = x.closeInvalidText()
		}
		if err != nil {
			*buf = data
			putReadBuf(buf) // not delivered
			buf, data = nil, nil
		}
		select {
		case x.in <- wsIncoming{text: text, data: data, buf: buf, err: err}:
		case <-x.r.Context().Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// closeInvalidText closes the connection with 1007 for a text message that
// is not UTF-8 (RFC 6455 §8.1); the app never sees the message. The framing
// is intact, so this waits for the client's close frame, and the app gets
// its code (normally 1007) in the returned error.
func (x *wsExchange) closeInvalidText() error {
	if err := x.ws.Close(1007, "invalid UTF-8"); err != nil {
		return err
	}
	_, _, err := x.ws.ReadMessage(nil)
	return err
}

func (x *wsExchange) finish() {
	x.gone.Store(true)
	if x.exc != nil {
		x.h.m.exceptions.Add(1)
		pe := newPythonError(x.exc)
		x.h.cfg.logger.Error("wsgi: app failed on a WebSocket", "error", pe.Error(), "traceback", pe.Traceback,
			"path", x.r.URL.Path)
	}
	switch {
	case x.ws != nil && !x.finished:
		// The app returned without closing: close for it (1011 when it
		// failed).
		code := 1000
		if x.exc != nil {
			code = 1011
		}
		x.closeHandshake(code, "")
	case x.ws == nil && !x.sentHTTP && !x.finished:
		// Never accepted: the handshake is refused.
		if x.exc != nil {
			x.h.internalError(x.w, newPythonError(x.exc))
		} else {
			plainError(x.w, http.StatusForbidden, "websocket connection refused")
		}
	}
}
