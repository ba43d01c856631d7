package wsgi_test

import (
	"context"
	"net/http"
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
