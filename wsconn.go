package wsgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
	"github.com/klauspost/compress/flate"
)

// wsConn is the server side of one WebSocket connection (RFC 6455) with
// permessage-deflate (RFC 7692). github.com/gobwas/ws does the handshake,
// the frame headers, the checks of RFC 6455 §5 and the unmasking, and
// parses the extension's parameters; github.com/klauspost/compress/flate
// deflates. This file only puts them together: messages out of frames,
// answers to control frames, the close handshake, and the read limit.
//
// The ASGI side (asgi_ws.go) reads from one goroutine and writes from
// another. ReadMessage ends the connection whenever it returns an error.
type wsConn struct {
	conn net.Conn
	rd   wsutil.Reader
	msg  wsRsv // whether the message being read is compressed
	stop func() bool

	limit          int64 // the largest message, decompressed
	deflate        bool  // permessage-deflate negotiated
	clientTakeover bool  // the client keeps its context: inflate with window
	window         []byte
	src            bytes.Reader // compressed payload, then inflateTail

	wmu            sync.Mutex // writes: the app's messages, control answers
	closeSent      bool
	serverTakeover bool          // compress with fw, never reset
	fw             *flate.Writer // this connection's, if serverTakeover
	fwOut          bytes.Buffer  // where fw writes
	threshold      int           // smaller messages go out uncompressed
	frame          bytes.Buffer  // a frame's header, and a small payload
}

// wsCompression is what Options.WebSocketCompression negotiates.
type wsCompression int

const (
	wsNoContextTakeover wsCompression = iota
	wsContextTakeover
	wsCompressionOff
)

const (
	// Messages under these sizes are sent uncompressed (coder/websocket's
	// thresholds, which this server used before).
	wsThresholdNoTakeover = 512
	wsThresholdTakeover   = 128
	// wsCloseWait bounds how long a close we sent waits for the client's.
	wsCloseWait = 5 * time.Second
	// wsWindow is deflate's window: what a context keeps.
	wsWindow = 32 << 10
)

// wsCloseError is the close frame from the client that ended the
// connection; code is 1005 if the frame had none.
type wsCloseError struct {
	code   int
	reason string
}

func (e *wsCloseError) Error() string {
	return fmt.Sprintf("websocket: closed by the client: %d %q", e.code, e.reason)
}

// wsFailure is a read that failed the connection with a close frame of
// code (RFC 6455 §7.1.7).
type wsFailure struct {
	code ws.StatusCode
	err  error
}

func (e *wsFailure) Error() string {
	return fmt.Sprintf("websocket: %v (closed with %d)", e.err, e.code)
}
func (e *wsFailure) Unwrap() error { return e.err }

var errWSClosed = errors.New("websocket: connection closed")

// wsAccept answers the opening handshake of r with the extra response
// headers of header (the subprotocol among them) and permessage-deflate as
// mode says; limit bounds a message. It returns the status it answered
// with: 101, or on failure the error status the client got, its
// connection then closed.
func wsAccept(w http.ResponseWriter, r *http.Request, header http.Header, mode wsCompression, limit int64) (*wsConn, int, error) {
	var neg wsNegotiation
	u := ws.HTTPUpgrader{Header: header, Timeout: wsCloseWait}
	if mode != wsCompressionOff {
		neg.mode = mode
		u.Negotiate = neg.negotiate
	}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		status := http.StatusInternalServerError // what ws.HTTPUpgrader answers then
		var rej *ws.ConnectionRejectedError
		if errors.As(err, &rej) {
			status = rej.StatusCode()
		}
		return nil, status, err
	}
	var params *wsflate.Parameters
	if neg.accepted {
		params = &neg.params
	}
	c := newWSConn(conn, rw.Reader, params, limit)
	// A request context that ends (the server shutting down hard) ends
	// the connection, and with it any read or write in progress.
	c.stop = context.AfterFunc(r.Context(), func() { _ = conn.Close() })
	return c, http.StatusSwitchingProtocols, nil
}

// newWSConn is the connection conn, read through r, with permessage-deflate
// as params says (nil: not negotiated).
func newWSConn(conn net.Conn, r io.Reader, params *wsflate.Parameters, limit int64) *wsConn {
	c := &wsConn{conn: conn, limit: limit, stop: func() bool { return false }}
	c.rd = wsutil.Reader{Source: r, State: ws.StateServerSide, MaxMessageSize: limit}
	if params != nil {
		c.deflate = true
		c.clientTakeover = !params.ClientNoContextTakeover
		c.serverTakeover = !params.ServerNoContextTakeover
		c.threshold = wsThresholdNoTakeover
		if c.serverTakeover {
			c.threshold = wsThresholdTakeover
		}
		c.rd.State |= ws.StateExtended
		c.rd.Extensions = []wsutil.RecvExtension{&c.msg}
		// Deflate can make a message a little longer than it was.
		c.rd.MaxMessageSize = limit + limit/64 + 1024
	}
	c.rd.OnIntermediate = c.control
	return c
}

// wsNegotiation answers one offer of permessage-deflate.
type wsNegotiation struct {
	mode     wsCompression
	accepted bool
	params   wsflate.Parameters // as answered
}

// negotiate accepts the first offer it can honour (RFC 7692 §7.1). With
// wsNoContextTakeover it asks both sides to compress each message on its
// own; with wsContextTakeover it keeps the contexts the client lets it
// keep. It declines a malformed offer, and one that limits the server's
// window: flate always uses 32 KiB.
func (n *wsNegotiation) negotiate(opt httphead.Option) (httphead.Option, error) {
	if n.accepted || !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
		return httphead.Option{}, nil
	}
	var offer wsflate.Parameters
	if err := offer.Parse(opt); err != nil {
		return httphead.Option{}, nil
	}
	if offer.ServerMaxWindowBits.Defined() && offer.ServerMaxWindowBits < 15 {
		return httphead.Option{}, nil
	}
	noTakeover := n.mode == wsNoContextTakeover
	n.params = wsflate.Parameters{
		ServerNoContextTakeover: noTakeover || offer.ServerNoContextTakeover,
		ClientNoContextTakeover: noTakeover || offer.ClientNoContextTakeover,
	}
	n.accepted = true
	answer := httphead.Option{Name: wsflate.ExtensionNameBytes}
	if n.params.ClientNoContextTakeover {
		answer.Parameters.Set([]byte("client_no_context_takeover"), nil)
	}
	if n.params.ServerNoContextTakeover {
		answer.Parameters.Set([]byte("server_no_context_takeover"), nil)
	}
	return answer, nil
}

// wsRsv clears RSV1 of the first frame of a compressed message, as
// wsflate.MessageState does, and fails a frame with RSV2 or RSV3 set: no
// extension defines them.
type wsRsv struct{ wsflate.MessageState }

func (s *wsRsv) UnsetBits(h ws.Header) (ws.Header, error) {
	h, err := s.MessageState.UnsetBits(h)
	if err == nil && h.Rsv != 0 {
		err = ws.ErrProtocolNonZeroRsv
	}
	return h, err
}

// ReadMessage reads the next data message, decompressed, appending it to
// buf[:0]; it answers the control frames before it. On an error the
// connection is over: the client sent a close frame (*wsCloseError), the
// client broke the protocol or the read limit (*wsFailure, after a close
// frame with its code), or the connection failed. After the app closed
// the connection, data messages are dropped until the client's close.
func (c *wsConn) ReadMessage(buf []byte) (text bool, data []byte, err error) {
	for {
		text, data, err = c.readMessage(buf)
		if err != nil {
			return false, data, c.end(err)
		}
		c.wmu.Lock()
		closing := c.closeSent
		c.wmu.Unlock()
		if !closing {
			return text, data, nil
		}
	}
}

func (c *wsConn) readMessage(buf []byte) (text bool, data []byte, err error) {
	var h ws.Header
	for {
		h, err = c.rd.NextFrame()
		if err != nil {
			return false, buf[:0], err
		}
		if !h.OpCode.IsControl() {
			break
		}
		if err := c.control(h, &c.rd); err != nil {
			return false, buf[:0], err
		}
	}
	text = h.OpCode == ws.OpText
	if !c.msg.IsCompressed() {
		data, err = readAll(&c.rd, buf[:0], c.limit)
		return text, data, err
	}
	zbuf := wsReadBufs.Get().(*[]byte)
	defer putReadBuf(zbuf)
	z, err := readAll(&c.rd, (*zbuf)[:0], c.rd.MaxMessageSize)
	z = append(z, inflateTail...)
	*zbuf = z
	if err != nil {
		return false, buf[:0], err
	}
	data, err = c.inflate(z, buf[:0])
	return text, data, err
}

// inflateTail ends a message's deflate data: the empty stored block the
// sender removed (RFC 7692 §7.2.2), then a final empty stored block, so
// that a complete message ends in io.EOF and a truncated one in an error.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

var inflaters sync.Pool

func (c *wsConn) inflate(z, out []byte) ([]byte, error) {
	c.src.Reset(z)
	var dict []byte
	if c.clientTakeover {
		dict = c.window
	}
	fr, _ := inflaters.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReaderDict(&c.src, dict)
	} else if err := fr.(flate.Resetter).Reset(&c.src, dict); err != nil {
		return out, err
	}
	out, err := readAll(fr, out, c.limit)
	inflaters.Put(fr)
	if err != nil {
		if !errors.Is(err, wsutil.ErrMessageTooLarge) {
			err = &wsFailure{ws.StatusInvalidFramePayloadData, fmt.Errorf("bad deflate data: %w", err)}
		}
		return out, err
	}
	if c.clientTakeover {
		c.window = appendWindow(c.window, out)
	}
	return out, nil
}

// appendWindow keeps the last wsWindow bytes of window and p.
func appendWindow(window, p []byte) []byte {
	if len(p) >= wsWindow {
		return append(window[:0], p[len(p)-wsWindow:]...)
	}
	if drop := len(window) + len(p) - wsWindow; drop > 0 {
		window = append(window[:0], window[drop:]...)
	}
	return append(window, p...)
}

// readAll appends what r has to b, failing past limit bytes.
func readAll(r io.Reader, b []byte, limit int64) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow, as io.ReadAll does
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return b, wsutil.ErrMessageTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// control answers a control frame: a ping with a pong, a close with a
// close (unless ours went first), which it returns as *wsCloseError.
func (c *wsConn) control(h ws.Header, r io.Reader) error {
	var p [125]byte // ws.CheckHeader has bounded it
	payload := p[:h.Length]
	if _, err := io.ReadFull(r, payload); err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if c.closeSent {
			return nil
		}
		return c.writeFrame(ws.OpPong, false, payload)
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(payload)
		switch {
		case len(payload) == 1:
			return &wsFailure{ws.StatusProtocolError, errors.New("a close frame of one byte")}
		case len(payload) >= 2:
			if err := ws.CheckCloseFrameData(code, reason); errors.Is(err, ws.ErrProtocolInvalidUTF8) {
				return &wsFailure{ws.StatusInvalidFramePayloadData, err}
			} else if err != nil {
				return &wsFailure{ws.StatusProtocolError, err}
			}
		}
		c.wmu.Lock()
		if !c.closeSent {
			c.closeSent = true
			// Echo the code (§5.5.1), not waiting long on a client that
			// stopped reading.
			_ = c.conn.SetWriteDeadline(time.Now().Add(wsCloseWait))
			_ = c.writeFrame(ws.OpClose, false, payload[:min(len(payload), 2)])
		}
		c.wmu.Unlock()
		ce := &wsCloseError{code: int(code), reason: reason}
		if code.Empty() {
			ce.code = int(ws.StatusNoStatusRcvd)
		}
		return ce
	}
	return nil // a pong
}

// end ends the connection after the read error err: a close frame first
// if the client broke the protocol or the limit.
func (c *wsConn) end(err error) error {
	var f *wsFailure
	var pe ws.ProtocolError
	switch {
	case errors.As(err, &f):
	case errors.Is(err, wsutil.ErrMessageTooLarge):
		f = &wsFailure{ws.StatusMessageTooBig, err}
	case errors.As(err, &pe), errors.Is(err, ws.ErrHeaderLengthMSB), errors.Is(err, ws.ErrHeaderLengthUnexpected),
		errors.Is(err, wsflate.ErrUnexpectedCompressionBit):
		f = &wsFailure{ws.StatusProtocolError, err}
	}
	if f != nil {
		c.wmu.Lock()
		if !c.closeSent {
			c.closeSent = true
			_ = c.conn.SetWriteDeadline(time.Now().Add(wsCloseWait))
			_ = c.writeFrame(ws.OpClose, false, ws.NewCloseFrameBody(f.code, ""))
		}
		c.wmu.Unlock()
		err = f
	}
	c.CloseNow()
	return err
}

// WriteMessage sends one message, compressed if deflate was negotiated
// and it is not small.
func (c *wsConn) WriteMessage(text bool, data []byte) error {
	op := ws.OpBinary
	if text {
		op = ws.OpText
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return errWSClosed
	}
	if !c.deflate || len(data) < c.threshold {
		return c.writeFrame(op, false, data)
	}
	var fw *flate.Writer
	var zb *bytes.Buffer
	if c.serverTakeover {
		// The context is kept: fw is never reset, and writes into fwOut.
		if c.fw == nil {
			c.fw, _ = flate.NewWriter(&c.fwOut, flate.BestSpeed)
		}
		fw, zb = c.fw, &c.fwOut
		zb.Reset()
	} else {
		zb = deflateBufs.Get().(*bytes.Buffer)
		defer putDeflateBuf(zb)
		zb.Reset()
		fw, _ = deflaters.Get().(*flate.Writer)
		if fw == nil {
			fw, _ = flate.NewWriter(zb, flate.BestSpeed)
		} else {
			fw.Reset(zb)
		}
		defer deflaters.Put(fw)
	}
	if _, err := fw.Write(data); err != nil {
		return err
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	z := bytes.TrimSuffix(zb.Bytes(), inflateTail[:4]) // RFC 7692 §7.2.1
	return c.writeFrame(op, true, z)
}

var (
	deflaters   sync.Pool
	deflateBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

func putDeflateBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledRead {
		deflateBufs.Put(b)
	}
}

// writeFrame writes one final frame; c.wmu is held.
func (c *wsConn) writeFrame(op ws.OpCode, compressed bool, payload []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload)), Rsv: ws.Rsv(compressed, false, false)}
	c.frame.Reset()
	if err := ws.WriteHeader(&c.frame, h); err != nil {
		return err
	}
	if len(payload) <= 2048 {
		c.frame.Write(payload)
		_, err := c.conn.Write(c.frame.Bytes())
		return err
	}
	bufs := net.Buffers{c.frame.Bytes(), payload}
	_, err := bufs.WriteTo(c.conn)
	return err
}

// Close starts the closing handshake with code and reason; the client's
// answer ends ReadMessage, which waits for it at most wsCloseWait. If the
// close frame cannot be written, the connection is closed at once.
func (c *wsConn) Close(code int, reason string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return errWSClosed
	}
	c.closeSent = true
	for len(reason) > 123 { // a control frame's 125 bytes, less the code
		_, n := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-n]
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(wsCloseWait))
	_ = c.conn.SetWriteDeadline(time.Now().Add(wsCloseWait))
	err := c.writeFrame(ws.OpClose, false, ws.NewCloseFrameBody(ws.StatusCode(code), reason))
	if err != nil {
		c.CloseNow()
	}
	return err
}

// CloseNow closes the TCP connection without a close frame.
func (c *wsConn) CloseNow() {
	c.stop()
	_ = c.conn.Close()
}

// putReadBuf gives a buffer back to wsReadBufs, unless it grew large.
func putReadBuf(b *[]byte) {
	if cap(*b) <= maxPooledRead {
		*b = (*b)[:0]
		wsReadBufs.Put(b)
	}
}
