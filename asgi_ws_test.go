package wsgi_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

func wsServer(t *testing.T, maxBody int64) (string, *wsgi.Handler) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_raw:ws_app", Protocol: "asgi", MaxBodyBytes: maxBody})
	srv := serve(t, h)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), h
}

func TestASGIWebSocketEcho(t *testing.T) {
	url, h := wsServer(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url+"/echo", &websocket.DialOptions{Subprotocols: []string{"chat.v1", "chat.v0"}})
	require.NoError(t, err)
	defer c.CloseNow()
	assert.Equal(t, "chat.v1", c.Subprotocol())
	assert.Equal(t, "yes", resp.Header.Get("X-Accepted"))

	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("héllo")))
	typ, data, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, websocket.MessageText, typ)
	assert.Equal(t, "echo: héllo", string(data))

	require.NoError(t, c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}))
	typ, data, err = c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, websocket.MessageBinary, typ)
	assert.Equal(t, []byte{3, 2, 1}, data)

	require.NoError(t, c.Close(websocket.StatusGoingAway, "leaving"))
	var events []string
	assert.True(t, waitFor(2*time.Second, func() bool {
		getJSON(t, h, "/events", &events)
		return strings.Contains(strings.Join(events, ","), "ws disconnect 1001")
	}), "the app gets websocket.disconnect with the client's code: %v", events)
}

func TestASGIWebSocketClose(t *testing.T) {
	url, _ := wsServer(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	c, _, err := websocket.Dial(ctx, url+"/close-code", nil)
	require.NoError(t, err)
	_, _, err = c.Read(ctx)
	assert.Equal(t, websocket.StatusCode(4001), websocket.CloseStatus(err))
	assert.Contains(t, err.Error(), "bye now")

	_, resp, err := websocket.Dial(ctx, url+"/refuse", nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	_, resp, err = websocket.Dial(ctx, url+"/deny", nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	c, _, err = websocket.Dial(ctx, url+"/raise", nil)
	require.NoError(t, err)
	_, _, err = c.Read(ctx)
	assert.Equal(t, websocket.StatusInternalError, websocket.CloseStatus(err))
}

// TestASGIWebSocketMessageSizes: messages of many sizes, text and binary,
// with and without compression, sent without waiting for the answers, each
// reach the app whole and alone. Client messages are read into reused
// buffers while the app still has the one before, so a message must carry
// nothing of another, and one past the buffers' pooling bound must come
// through too.
func TestASGIWebSocketMessageSizes(t *testing.T) {
	url, _ := wsServer(t, 0)
	sizes := []int{1, 1024, 10, 100 << 10, 3, 70 << 10, 512, 0, 4096}
	type message struct {
		typ  websocket.MessageType
		data []byte
	}
	var sent []message
	for i, n := range sizes {
		sent = append(sent, message{websocket.MessageText, []byte(strings.Repeat(string(rune('a'+i)), n))})
		bin := make([]byte, n)
		for j := range bin {
			bin[j] = byte(j + i)
		}
		sent = append(sent, message{websocket.MessageBinary, bin})
	}
	for _, mode := range []websocket.CompressionMode{websocket.CompressionDisabled, websocket.CompressionNoContextTakeover} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, url+"/echo", &websocket.DialOptions{CompressionMode: mode})
		require.NoError(t, err)
		defer c.CloseNow()
		c.SetReadLimit(1 << 20) // the client's own default is 32 KiB
		written := make(chan error, 1)
		go func() {
			for _, m := range sent {
				if err := c.Write(ctx, m.typ, m.data); err != nil {
					written <- err
					return
				}
			}
			written <- nil
		}()
		for i, m := range sent {
			typ, data, err := c.Read(ctx)
			require.NoError(t, err)
			require.Equal(t, m.typ, typ)
			want := slices.Clone(m.data)
			if typ == websocket.MessageText {
				want = append([]byte("echo: "), want...)
			} else {
				slices.Reverse(want)
			}
			require.Equal(t, want, data, "message %d (%d bytes), mode %v", i, len(m.data), mode)
		}
		require.NoError(t, <-written)
	}
}

func TestASGIWebSocketSizeLimit(t *testing.T) {
	url, _ := wsServer(t, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url+"/echo", nil)
	require.NoError(t, err)
	defer c.CloseNow()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 100))))
	_, data, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "echo: "+strings.Repeat("x", 100), string(data))
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 2000))))
	_, _, err = c.Read(ctx)
	assert.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err))
}

// wsRecordServer serves testdata/asgi_ws_record.py. received returns what
// the app got on the connection at path once it saw websocket.disconnect.
func wsRecordServer(t *testing.T) (srv *httptest.Server, received func(path string) []string) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_ws_record:app", Protocol: "asgi"})
	srv = serve(t, h)
	return srv, func(path string) []string {
		t.Helper()
		var log []string
		done := waitFor(8*time.Second, func() bool {
			getJSON(t, h, path, &log)
			return len(log) > 0 && strings.HasPrefix(log[len(log)-1], "disconnect")
		})
		assert.True(t, done, "the app never got websocket.disconnect on %s: %q", path, log)
		return log
	}
}

// rawWebSocket is a client that does the opening handshake by hand, so a
// test can send frames coder/websocket would not (unmasked ones) and see
// exactly what the server sends back.
type rawWebSocket struct {
	net.Conn
	br     *bufio.Reader
	header http.Header // the 101 response's
	ext    string      // the Sec-WebSocket-Extensions answered
}

// dialRawWebSocket connects to path; ext, if given, is the
// Sec-WebSocket-Extensions the client offers.
func dialRawWebSocket(t *testing.T, srv *httptest.Server, path string, ext ...string) *rawWebSocket {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	for _, e := range ext {
		req.Header.Add("Sec-WebSocket-Extensions", e)
	}
	require.NoError(t, req.Write(conn))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return &rawWebSocket{Conn: conn, br: br, header: resp.Header, ext: resp.Header.Get("Sec-WebSocket-Extensions")}
}

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
)

// send writes one frame, masked as RFC 6455 §5.3 requires of a client
// unless masked is false. Payloads stay under 126 bytes.
func (c *rawWebSocket) send(t *testing.T, op byte, fin, masked bool, payload []byte) {
	t.Helper()
	b := []byte{op, byte(len(payload))}
	if fin {
		b[0] |= 0x80
	}
	if masked {
		key := []byte{0x12, 0x34, 0x56, 0x78}
		b[1] |= 0x80
		b = append(b, key...)
		for i, p := range payload {
			b = append(b, p^key[i%4])
		}
	} else {
		b = append(b, payload...)
	}
	_, err := c.Write(b)
	require.NoError(t, err)
}

// sendClose writes a close frame with code, or an empty one if code is 0.
func (c *rawWebSocket) sendClose(t *testing.T, code uint16) {
	var p []byte
	if code != 0 {
		p = binary.BigEndian.AppendUint16(nil, code)
	}
	c.send(t, opClose, true, true, p)
}

// next reads one whole unfragmented frame from the server.
func (c *rawWebSocket) next() (op byte, payload []byte, err error) {
	b0, payload, err := c.nextFrame()
	return b0 & 0x0f, payload, err
}

// nextFrame is next with the frame's first byte (FIN, RSV bits, opcode).
func (c *rawWebSocket) nextFrame() (b0 byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	case 127:
		return 0, nil, errors.New("frame too long for this test client")
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0], payload, err
}

// closeCode reads the next frame and returns its close code (-1 if it is
// not a close frame with a code).
func (c *rawWebSocket) closeCode(t *testing.T) int {
	t.Helper()
	op, payload, err := c.next()
	require.NoError(t, err)
	if op != opClose || len(payload) < 2 {
		return -1
	}
	return int(binary.BigEndian.Uint16(payload))
}

// assertEOF checks that the server closed the TCP connection.
func (c *rawWebSocket) assertEOF(t *testing.T) {
	t.Helper()
	op, payload, err := c.next()
	assert.ErrorIs(t, err, io.EOF, "frame %d %q", op, payload)
}

// TestASGIWebSocketDisconnectCode checks the code of the app's
// websocket.disconnect: the code of the close frame the client sent, also
// when the client only answers the app's close (RFC 6455 §7.1.5, as daphne
// and uvicorn), and 1006 when no close frame came.
func TestASGIWebSocketDisconnectCode(t *testing.T) {
	srv, received := wsRecordServer(t)
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http")
	tests := []struct {
		name   string
		query  string
		client func(t *testing.T, path string)
		want   string
	}{
		{"app closes, client echoes", "?close=4001", func(t *testing.T, path string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, wsURL+path, nil)
			require.NoError(t, err)
			defer c.CloseNow()
			_, _, err = c.Read(ctx)
			assert.Equal(t, websocket.StatusCode(4001), websocket.CloseStatus(err), "%v", err)
		}, "disconnect 4001"},
		{"app closes, client answers with its own code", "?close=4001", func(t *testing.T, path string) {
			c := dialRawWebSocket(t, srv, path)
			assert.Equal(t, 4001, c.closeCode(t))
			c.sendClose(t, 1001)
			c.assertEOF(t)
		}, "disconnect 1001"},
		{"app closes, client leaves without answering", "?close=4001", func(t *testing.T, path string) {
			c := dialRawWebSocket(t, srv, path)
			assert.Equal(t, 4001, c.closeCode(t))
			require.NoError(t, c.Close())
		}, "disconnect 1006"},
		{"client closes", "", func(t *testing.T, path string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, wsURL+path, nil)
			require.NoError(t, err)
			assert.NoError(t, c.Close(4321, "bye"))
		}, "disconnect 4321"},
		{"client closes without a code", "", func(t *testing.T, path string) {
			c := dialRawWebSocket(t, srv, path)
			c.sendClose(t, 0)
			op, payload, err := c.next()
			require.NoError(t, err)
			assert.Equal(t, []any{byte(opClose), 0}, []any{op, len(payload)}, "an empty close frame back")
			c.assertEOF(t)
		}, "disconnect 1005"},
		{"client leaves without a close frame", "", func(t *testing.T, path string) {
			c := dialRawWebSocket(t, srv, path)
			require.NoError(t, c.Close())
		}, "disconnect 1006"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/disconnect-%d", i)
			tt.client(t, path+tt.query)
			assert.Equal(t, []string{tt.want}, received(path))
		})
	}
}

// TestASGIWebSocketUnmaskedFrame checks that an unmasked frame from the
// client fails the connection (RFC 6455 §5.1): a close frame with 1002, the
// TCP connection closed, and websocket.disconnect with 1006 for the app, as
// uvicorn with websockets does (no close frame came from the client).
func TestASGIWebSocketUnmaskedFrame(t *testing.T) {
	srv, received := wsRecordServer(t)
	c := dialRawWebSocket(t, srv, "/unmasked")
	c.send(t, opText, true, false, []byte("hello"))
	assert.Equal(t, 1002, c.closeCode(t))
	c.assertEOF(t)
	assert.Equal(t, []string{"disconnect 1006"}, received("/unmasked"))
}

// TestASGIWebSocketTextUTF8 checks that a text message that is not UTF-8
// never reaches the app and fails the connection with 1007 (RFC 6455 §8.1),
// and that a valid one split inside a character across frames arrives whole.
func TestASGIWebSocketTextUTF8(t *testing.T) {
	srv, received := wsRecordServer(t)
	type frame struct {
		op      byte
		fin     bool
		payload string
	}
	tests := []struct {
		name   string
		frames []frame
		echo   string // what the app sends back; "" if it must close with 1007
		want   []string
	}{
		{"invalid", []frame{{opText, true, "ab\xff\xfe"}}, "", []string{"disconnect 1007"}},
		{"surrogate", []frame{{opText, true, "\xed\xa0\x80"}}, "", []string{"disconnect 1007"}},
		{"invalid across fragments", []frame{{opText, false, "h\xc3"}, {opContinuation, true, "x"}}, "",
			[]string{"disconnect 1007"}},
		{"valid, split inside a character", []frame{{opText, false, "h\xc3"}, {opContinuation, true, "\xa9llo"}}, "héllo",
			[]string{`text 'h\xe9llo'`, "disconnect 1000"}},
		{"binary is not checked", []frame{{opBinary, true, "\xff\xfe"}}, "\xff\xfe",
			[]string{`bytes b'\xff\xfe'`, "disconnect 1000"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/utf8-%d", i)
			c := dialRawWebSocket(t, srv, path)
			for _, f := range tt.frames {
				c.send(t, f.op, f.fin, true, []byte(f.payload))
			}
			if tt.echo == "" {
				assert.Equal(t, 1007, c.closeCode(t))
				c.sendClose(t, 1007)
			} else {
				_, payload, err := c.next()
				require.NoError(t, err)
				assert.Equal(t, tt.echo, string(payload))
				c.sendClose(t, 1000)
				assert.Equal(t, 1000, c.closeCode(t))
			}
			c.assertEOF(t)
			assert.Equal(t, tt.want, received(path))
		})
	}

	t.Run("coder/websocket client", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/utf8-coder", nil)
		require.NoError(t, err)
		defer c.CloseNow()
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("ab\xff")))
		_, _, err = c.Read(ctx)
		assert.Equal(t, websocket.StatusInvalidFramePayloadData, websocket.CloseStatus(err), "%v", err)
		assert.Equal(t, []string{"disconnect 1007"}, received("/utf8-coder"))
	})
}

// The close codes, checked with a real client: Python's websockets
// (Debian's python3-websockets) run against the server.
func TestASGIWebSocketPythonClient(t *testing.T) {
	skipWithoutFrameworks(t)
	srv, received := wsRecordServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/clients/ws_client.py", url).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var seen map[string]any
	require.NoError(t, json.Unmarshal(out, &seen), "%s", out)
	assert.Equal(t, 4001.0, seen["close_echo"], "the client got the app's close code")
	assert.Equal(t, "hi", seen["client_close_echo"])
	assert.Equal(t, 1007.0, seen["bad_utf8"], "a text message that is not UTF-8 closes with 1007")

	assert.Equal(t, []string{"disconnect 4001"}, received("/close-echo"), "the app gets the code the client echoed")
	assert.Equal(t, []string{"text 'hi'", "disconnect 4100"}, received("/client-close"))
	assert.Equal(t, []string{"disconnect 1007"}, received("/bad-utf8"), "the app never sees the message")
}

// permessage-deflate is negotiated by default (without context takeover,
// so the memory it takes does not grow with the connections), can be set
// to keep the context or turned off, and messages round-trip through it:
// with Python's websockets, which offers it as browsers do, and with
// coder/websocket.
func TestASGIWebSocketCompression(t *testing.T) {
	for _, tt := range []struct {
		mode, python, coder string // the Sec-WebSocket-Extensions answered
	}{
		{"", "permessage-deflate;client_no_context_takeover;server_no_context_takeover",
			"permessage-deflate;client_no_context_takeover;server_no_context_takeover"},
		{"context-takeover", "permessage-deflate", "permessage-deflate"},
		{"off", "", ""},
	} {
		t.Run("mode="+tt.mode, func(t *testing.T) {
			h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_ws_record:app", Protocol: "asgi",
				WebSocketCompression: tt.mode})
			srv := serve(t, h)
			url := "ws" + strings.TrimPrefix(srv.URL, "http")

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, url+"/coder", &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
			require.NoError(t, err)
			assert.Equal(t, tt.coder, resp.Header.Get("Sec-WebSocket-Extensions"))
			c.SetReadLimit(1 << 20)
			msg := strings.Repeat("compress me ", 5000)
			require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
			typ, got, err := c.Read(ctx)
			require.NoError(t, err)
			assert.Equal(t, websocket.MessageText, typ)
			assert.Equal(t, msg, string(got))
			require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))

			if os.Getenv("WSGI_TEST_STDLIB_ONLY") != "" {
				return // Python's websockets is Debian's, for the system Python
			}
			out, err := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/clients/ws_deflate.py", url).CombinedOutput()
			require.NoError(t, err, "%s", out)
			var seen struct {
				Extensions *string `json:"extensions"`
				RoundTrips []bool  `json:"round_trips"`
			}
			require.NoError(t, json.Unmarshal(out, &seen), "%s", out)
			ext := ""
			if seen.Extensions != nil {
				ext = *seen.Extensions
			}
			assert.Equal(t, tt.python, ext)
			assert.Equal(t, []bool{true, true, true, true}, seen.RoundTrips)
		})
	}
	_, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "asgi_ws_record:app", Protocol: "asgi", WebSocketCompression: "max"})
	assert.ErrorContains(t, err, `WebSocketCompression "max"`)
}
