package examples_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The FastAPI app's WebSocket echo at /fastapi/ws (examples/fastapiapp).

const wsPath = "/fastapi/ws"

// wsURL is the ws:// URL of path on the demo server.
func wsURL(path string) string {
	return "ws" + strings.TrimPrefix(base, "http") + path
}

// dialEcho opens a WebSocket to the echo, closed (if still open) when the
// test ends.
func dialEcho(t *testing.T, ctx context.Context) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, wsURL(wsPath), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	c.SetReadLimit(1 << 20) // the client's default is 32 KiB
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func wsContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo sends one message and checks that the same comes back.
func echo(t *testing.T, ctx context.Context, c *websocket.Conn, typ websocket.MessageType, data []byte) {
	t.Helper()
	require.NoError(t, c.Write(ctx, typ, data))
	gotType, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, typ, gotType)
	assert.Equal(t, data, got)
}

func TestWebSocketEchoText(t *testing.T) {
	needServer(t)
	ctx := wsContext(t)
	c := dialEcho(t, ctx)
	echo(t, ctx, c, websocket.MessageText, []byte("hello"))
	echo(t, ctx, c, websocket.MessageText, []byte("héllo ☃ — ünïcode"))
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestWebSocketEchoBytes(t *testing.T) {
	needServer(t)
	ctx := wsContext(t)
	c := dialEcho(t, ctx)
	echo(t, ctx, c, websocket.MessageBinary, []byte{0, 1, 2, 0xfe, 0xff})
	// Not valid UTF-8: it must come back as bytes, untouched.
	echo(t, ctx, c, websocket.MessageBinary, []byte("\xc3\x28 not utf-8"))
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestWebSocketEchoSeveralMessages(t *testing.T) {
	needServer(t)
	ctx := wsContext(t)
	c := dialEcho(t, ctx)

	// One at a time, alternating types, including an empty message and
	// one bigger than a frame buffer.
	msgs := []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte("one")},
		{websocket.MessageBinary, []byte("two")},
		{websocket.MessageText, []byte("")},
		{websocket.MessageBinary, []byte{}},
		{websocket.MessageText, []byte(strings.Repeat("big ", 64<<10))},
		{websocket.MessageBinary, []byte(strings.Repeat("\x00\xff", 100<<10))},
	}
	for _, m := range msgs {
		echo(t, ctx, c, m.typ, m.data)
	}

	// Many in a row before reading: they come back in order.
	const n = 50
	for i := range n {
		typ := websocket.MessageText
		if i%2 == 1 {
			typ = websocket.MessageBinary
		}
		require.NoError(t, c.Write(ctx, typ, fmt.Appendf(nil, "message %d", i)))
	}
	for i := range n {
		typ, data, err := c.Read(ctx)
		require.NoError(t, err)
		want := websocket.MessageText
		if i%2 == 1 {
			want = websocket.MessageBinary
		}
		assert.Equal(t, want, typ, "message %d", i)
		assert.Equal(t, fmt.Sprintf("message %d", i), string(data))
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestWebSocketCleanClose(t *testing.T) {
	needServer(t)
	ctx := wsContext(t)
	c := dialEcho(t, ctx)
	echo(t, ctx, c, websocket.MessageText, []byte("before closing"))

	// The close handshake completes: the server answers our close frame
	// (Close returns an error otherwise).
	start := time.Now()
	require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"))
	assert.Less(t, time.Since(start), 4*time.Second, "the server did not answer the close frame promptly")

	// The connection is over for us too.
	_, _, err := c.Read(ctx)
	require.Error(t, err)

	// The app is still serving: a new connection echoes.
	c2 := dialEcho(t, ctx)
	echo(t, ctx, c2, websocket.MessageText, []byte("again"))
	require.NoError(t, c2.Close(websocket.StatusNormalClosure, ""))
}

func TestWebSocketConcurrentConnections(t *testing.T) {
	needServer(t)
	ctx := wsContext(t)
	const n = 8
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialEcho(t, ctx)
	}
	// Interleaved: each connection gets its own messages back.
	for round := range 3 {
		for i, c := range conns {
			echo(t, ctx, c, websocket.MessageText, fmt.Appendf(nil, "conn %d round %d", i, round))
		}
	}
	for _, c := range conns {
		require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	}
}

func TestWebSocketURLIsUnderThePrefix(t *testing.T) {
	needServer(t)
	ctx := wsContext(t)

	// The app's route is /ws; mounted at /fastapi it answers only there.
	for _, path := range []string{"/ws", "/flask/ws", "/fastapi/wsx", "/fastapi/ws/nope"} {
		c, resp, err := websocket.Dial(ctx, wsURL(path), nil)
		if c != nil {
			_ = c.CloseNow()
		}
		require.Error(t, err, "%s accepted a WebSocket", path)
		if assert.NotNil(t, resp, "%s", path) {
			assert.NotEqual(t, http.StatusSwitchingProtocols, resp.StatusCode, "%s", path)
			assert.GreaterOrEqual(t, resp.StatusCode, 400, "%s", path)
		}
	}

	// A plain GET of the WebSocket route is no HTTP endpoint.
	r := do(t, "GET", wsPath, "")
	assert.Equal(t, http.StatusNotFound, r.status, "body: %s", r.body)
}
