package wsgi_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// deflated is p compressed as a permessage-deflate message (RFC 7692
// §7.2.1), by compress/flate: a deflater other than the server's.
func deflated(t *testing.T, p string) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	require.NoError(t, err)
	_, err = w.Write([]byte(p))
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

const rsv1, rsv2 = 0x40, 0x20

// TestWebSocketFrames sends frames by hand over a connection that
// negotiated permessage-deflate and checks what the server answers and
// what the app gets: compressed messages whole or in fragments, control
// frames between fragments, and each way of breaking the protocol (RFC 6455
// §5, §7.4; RFC 7692 §6) failing the connection with its close code.
func TestWebSocketFrames(t *testing.T) {
	srv, received := wsRecordServer(t)
	hello := strings.Repeat("hello ", 20)
	z := deflated(t, hello)
	type frame struct {
		b0      byte // FIN, RSV bits and opcode
		payload []byte
	}
	tests := []struct {
		name   string
		frames []frame
		answer []frame // the frames the server sends back, then its close code
		close  int     // 0: the client closes with 1000 after the answer
		want   []string
	}{
		{"compressed", []frame{{0x80 | rsv1 | opText, z}},
			[]frame{{0x80 | opText, []byte(hello)}}, 0, // under 512 bytes: sent uncompressed
			[]string{"text '" + hello + "'", "disconnect 1000"}},
		{"compressed, in fragments", []frame{{rsv1 | opText, z[:5]}, {opContinuation, z[5:9]}, {0x80 | opContinuation, z[9:]}},
			[]frame{{0x80 | opText, []byte(hello)}}, 0,
			[]string{"text '" + hello + "'", "disconnect 1000"}},
		{"ping between fragments", []frame{{rsv1 | opBinary, z[:5]}, {0x80 | 0x9, []byte("are you there")}, {0x80 | opContinuation, z[5:]}},
			[]frame{{0x80 | 0xa, []byte("are you there")}, {0x80 | opBinary, []byte(hello)}}, 0,
			[]string{"bytes b'" + hello + "'", "disconnect 1000"}},
		{"uncompressed message", []frame{{0x80 | opText, []byte("plain")}},
			[]frame{{0x80 | opText, []byte("plain")}}, 0,
			[]string{"text 'plain'", "disconnect 1000"}},
		{"compression bit on a continuation", []frame{{rsv1 | opText, z[:5]}, {0x80 | rsv1 | opContinuation, z[5:]}},
			nil, 1002, []string{"disconnect 1006"}},
		{"compression bit on a ping", []frame{{0x80 | rsv1 | 0x9, nil}}, nil, 1002, []string{"disconnect 1006"}},
		{"RSV2", []frame{{0x80 | rsv2 | opText, []byte("x")}}, nil, 1002, []string{"disconnect 1006"}},
		{"bad deflate data", []frame{{0x80 | rsv1 | opText, []byte{0xff, 0xff, 0xff, 0xff}}}, nil, 1007,
			[]string{"disconnect 1006"}},
		{"truncated deflate data", []frame{{0x80 | rsv1 | opText, z[:len(z)/2]}}, nil, 1007, []string{"disconnect 1006"}},
		{"continuation first", []frame{{0x80 | opContinuation, []byte("x")}}, nil, 1002, []string{"disconnect 1006"}},
		{"fragmented ping", []frame{{0x9, []byte("x")}}, nil, 1002, []string{"disconnect 1006"}},
		{"reserved opcode", []frame{{0x80 | 0x3, []byte("x")}}, nil, 1002, []string{"disconnect 1006"}},
		{"close frame of one byte", []frame{{0x80 | opClose, []byte{3}}}, nil, 1002, []string{"disconnect 1006"}},
		{"close code 1005 sent", []frame{{0x80 | opClose, binary.BigEndian.AppendUint16(nil, 1005)}}, nil, 1002,
			[]string{"disconnect 1006"}},
		{"close reason not UTF-8", []frame{{0x80 | opClose, append(binary.BigEndian.AppendUint16(nil, 1000), 0xff)}}, nil, 1007,
			[]string{"disconnect 1006"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/frames-%d", i)
			c := dialRawWebSocket(t, srv, path, "permessage-deflate")
			require.Equal(t, "permessage-deflate;client_no_context_takeover;server_no_context_takeover", c.ext)
			for _, f := range tt.frames {
				c.send(t, f.b0&0x7f, f.b0&0x80 != 0, true, f.payload)
			}
			for _, f := range tt.answer {
				b0, payload, err := c.nextFrame()
				require.NoError(t, err)
				assert.Equal(t, f, frame{b0, payload})
			}
			if tt.close == 0 {
				c.sendClose(t, 1000)
				assert.Equal(t, 1000, c.closeCode(t))
			} else {
				assert.Equal(t, tt.close, c.closeCode(t))
			}
			c.assertEOF(t)
			assert.Equal(t, tt.want, received(path))
		})
	}

	t.Run("compression bit without permessage-deflate", func(t *testing.T) {
		c := dialRawWebSocket(t, srv, "/frames-plain")
		require.Empty(t, c.ext)
		c.send(t, rsv1|opText, true, true, z)
		assert.Equal(t, 1002, c.closeCode(t))
		c.assertEOF(t)
		assert.Equal(t, []string{"disconnect 1006"}, received("/frames-plain"))
	})
}

// TestWebSocketNegotiation checks the answers to offers of
// permessage-deflate in each mode (RFC 7692 §7.1).
func TestWebSocketNegotiation(t *testing.T) {
	for _, tt := range []struct {
		mode   string
		offers []string
		want   string
	}{
		{"", []string{"permessage-deflate; client_max_window_bits"},
			"permessage-deflate;client_no_context_takeover;server_no_context_takeover"},
		{"", []string{"x-webkit-deflate-frame", "permessage-deflate"},
			"permessage-deflate;client_no_context_takeover;server_no_context_takeover"},
		{"", []string{"permessage-deflate; server_max_window_bits=10"}, ""}, // flate's window is 32 KiB
		{"", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"},
			"permessage-deflate;client_no_context_takeover;server_no_context_takeover"}, // the next offer
		{"", []string{"permessage-deflate; server_max_window_bits=15"},
			"permessage-deflate;client_no_context_takeover;server_no_context_takeover"},
		{"", []string{"permessage-deflate; bogus"}, ""},
		{"", []string{"permessage-deflate; client_max_window_bits=99"}, ""},
		{"context-takeover", []string{"permessage-deflate; client_max_window_bits"}, "permessage-deflate"},
		{"context-takeover", []string{"permessage-deflate; server_no_context_takeover"},
			"permessage-deflate;server_no_context_takeover"},
		{"context-takeover", []string{"permessage-deflate; client_no_context_takeover"},
			"permessage-deflate;client_no_context_takeover"},
		{"off", []string{"permessage-deflate"}, ""},
	} {
		t.Run(tt.mode+" "+strings.Join(tt.offers, " | "), func(t *testing.T) {
			h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_ws_record:app", Protocol: "asgi",
				WebSocketCompression: tt.mode})
			c := dialRawWebSocket(t, serve(t, h), "/negotiate", tt.offers...)
			assert.Equal(t, tt.want, c.ext)
			c.sendClose(t, 1000)
			assert.Equal(t, 1000, c.closeCode(t))
		})
	}
}

// TestWebSocketContextTakeover sends messages that repeat one another
// both ways with the contexts kept, so each side's deflate refers back to
// earlier messages; and checks the server drops its context when the
// client asks it to.
func TestWebSocketContextTakeover(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_ws_record:app", Protocol: "asgi",
		WebSocketCompression: "context-takeover"})
	srv := serve(t, h)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url+"/takeover", &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
	require.NoError(t, err)
	defer c.CloseNow()
	require.Equal(t, "permessage-deflate", resp.Header.Get("Sec-WebSocket-Extensions"))
	c.SetReadLimit(1 << 20)
	base := strings.Repeat(`{"id": 1, "name": "item", "price": 9.99} `, 30)
	for i := range 40 {
		// Beyond the 32 KiB window by the end, so old context slides out.
		msg := fmt.Sprintf("%d %s %d", i, base, i*i)
		if i%7 == 6 {
			msg = strings.Repeat("z", 40000+i) // a message longer than the window
		}
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, msg, string(got), "message %d", i)
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

// TestWebSocketDeflateLimit: a small compressed message that inflates past
// the read limit (a deflate bomb) fails the connection with 1009 without
// the server inflating it all.
func TestWebSocketDeflateLimit(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_ws_record:app", Protocol: "asgi", MaxBodyBytes: 1024})
	srv := serve(t, h)
	c := dialRawWebSocket(t, srv, "/bomb", "permessage-deflate")
	require.NotEmpty(t, c.ext)
	c.send(t, rsv1|opBinary, true, true, deflated(t, strings.Repeat("\x00", 1024))) // the limit: allowed
	b0, payload, err := c.nextFrame()
	require.NoError(t, err)
	assert.Equal(t, byte(0x80|rsv1|opBinary), b0, "the echo, 512 bytes or more, compressed")
	echo, err := io.ReadAll(flate.NewReader(bytes.NewReader(append(payload, 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff))))
	require.NoError(t, err)
	assert.Equal(t, make([]byte, 1024), echo)
	// Over the limit by one byte, sent in frames of under 126 bytes.
	over := deflated(t, strings.Repeat("\x00", 1025))
	c.send(t, rsv1|opBinary, false, true, over[:1])
	c.send(t, 0x80|opContinuation, true, true, over[1:])
	assert.Equal(t, 1009, c.closeCode(t))
	c.assertEOF(t)
	var log []string
	assert.True(t, waitFor(8*time.Second, func() bool {
		getJSON(t, h, "/bomb", &log)
		return len(log) == 2
	}))
	assert.Equal(t, []string{"bytes b'" + strings.Repeat(`\x00`, 1024) + "'", "disconnect 1006"}, log)
}

// TestWebSocketHandshake: the 101 response carries the headers Go
// middleware set on the ResponseWriter, and a handshake the server refuses
// (a Sec-WebSocket-Version other than 13, RFC 6455 §4.4) is answered 426
// with the version it speaks; both count in the metrics with their status.
func TestWebSocketHandshake(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_ws_record:app", Protocol: "asgi"})
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "abc")
		h.ServeHTTP(w, r)
	}))
	c := dialRawWebSocket(t, srv, "/handshake")
	assert.Equal(t, "abc", c.header.Get("X-Request-Id"))
	assert.Equal(t, []string{"websocket"}, c.header.Values("Upgrade"), "the handshake's own fields, once")
	c.sendClose(t, 1000)
	assert.Equal(t, 1000, c.closeCode(t))

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/handshake-refused", nil)
	require.NoError(t, err)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "8")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusUpgradeRequired, resp.StatusCode)
	assert.Equal(t, "13", resp.Header.Get("Sec-WebSocket-Version"))

	count := func(code int) uint64 {
		for _, rc := range h.Metrics().Requests {
			if rc.Method == "GET" && rc.Code == code {
				return rc.Count
			}
		}
		return 0
	}
	assert.True(t, waitFor(5*time.Second, func() bool { return count(101) == 1 && count(426) == 1 }),
		"%+v", h.Metrics().Requests)
}
