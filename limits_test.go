package wsgi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// rawPost sends a request whose body arrives as pieces, pause apart, and
// returns the response status line and body.
func rawPost(t *testing.T, addr, path string, declared int, pieces []string, pause time.Duration) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, declared)
	require.NoError(t, err)
	for _, p := range pieces {
		time.Sleep(pause)
		if _, err := conn.Write([]byte(p)); err != nil {
			break
		}
	}
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String()
}

func TestBodyReadTimeout(t *testing.T) {
	for _, app := range []struct{ name, app, protocol string }{{"wsgi", "behave", "wsgi"}, {"asgi", "asgi_raw:app", "asgi"}} {
		t.Run(app.name, func(t *testing.T) {
			// A generous bound against the 100ms pauses of the steady
			// upload: a loaded machine must not turn them into stalls.
			h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: app.app, Protocol: app.protocol, BodyReadTimeout: time.Second})
			srv := serve(t, h)
			addr := srv.Listener.Addr().String()

			start := time.Now()
			status, _ := rawPost(t, addr, "/echo", 100, []string{"only ten b"}, 0)
			assert.Equal(t, http.StatusRequestTimeout, status, "a stalled upload")
			assert.Less(t, time.Since(start), 4*time.Second)

			// Slow but steady: every read finishes within the bound.
			pieces := strings.Split("0123456789", "")
			status, body := rawPost(t, addr, "/echo", 10, pieces, 100*time.Millisecond)
			assert.Equal(t, http.StatusOK, status)
			assert.Equal(t, "0123456789", body)
		})
	}
}

// TestDirectBodyRead: a read large enough to go from the client straight
// into the app's bytes object keeps the same bounds and errors: a stall is
// 408, a slow but steady upload arrives whole, a client that stops sending
// early makes read() raise.
func TestDirectBodyRead(t *testing.T) {
	h, _ := behave(t, func(o *wsgi.Options) { o.BodyReadTimeout = time.Second })
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	const n = 64 << 10

	status, _ := rawPost(t, addr, "/echo", n, []string{strings.Repeat("a", 1000)}, 0)
	assert.Equal(t, http.StatusRequestTimeout, status, "a stalled upload")

	var pieces []string
	for i := range 8 {
		pieces = append(pieces, strings.Repeat(string(rune('a'+i)), n/8))
	}
	status, body := rawPost(t, addr, "/echo", n, pieces, 100*time.Millisecond)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, strings.Join(pieces, ""), body, "a slow but steady upload")

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /read-error HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", n, pieces[0])
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "OSError: wsgi: client closed the connection before sending the whole body", string(b))
	assert.Equal(t, "tuple", do(h, "GET", "/tuple", nil).Body.String(), "the thread is back")
}

func TestBodyReadTimeoutRaisesInApp(t *testing.T) {
	h, _ := behave(t, func(o *wsgi.Options) { o.BodyReadTimeout = 200 * time.Millisecond })
	srv := serve(t, h)
	status, body := rawPost(t, srv.Listener.Addr().String(), "/read-error", 50, []string{"abc"}, 0)
	assert.Equal(t, 200, status)
	assert.Equal(t, "OSError: wsgi: the client sent no request body data for 200ms", body)
}

func TestRequestTimeout(t *testing.T) {
	h, logs := behave(t, func(o *wsgi.Options) {
		o.Threads = 1
		o.RequestTimeout = 300 * time.Millisecond
	})
	srv := serve(t, h)

	// A busy loop: 504 on time, the interrupt stops Python, the thread
	// serves the next request.
	start := time.Now()
	status, body, _ := fetch(t, srv.URL, "/spin")
	assert.Equal(t, http.StatusGatewayTimeout, status)
	assert.Equal(t, "request timed out\n", body)
	assert.Less(t, time.Since(start), 2*time.Second)
	require.True(t, waitFor(2*time.Second, func() bool { return h.Stats().Busy == 0 }), "the interrupt freed the thread")
	closes := map[string]any{}
	getJSON(t, h, "/closes", &closes)
	assert.Equal(t, "RequestTimeout", closes["spin"])
	assert.Contains(t, logs.String(), "request timed out")

	// A C call (time.sleep) is not interrupted: 504 on time anyway, and the
	// thread stays counted as busy until Python returns.
	start = time.Now()
	status, _, _ = fetch(t, srv.URL, "/sleep?1.0")
	assert.Equal(t, http.StatusGatewayTimeout, status)
	assert.Less(t, time.Since(start), 900*time.Millisecond)
	st := h.Stats()
	assert.Equal(t, 1, st.Busy)
	assert.Equal(t, 1, st.TimedOut)
	require.True(t, waitFor(3*time.Second, func() bool { return h.Stats().Busy == 0 }))
	assert.Equal(t, 0, h.Stats().TimedOut)

	// Fast requests are unaffected, and no stale interrupt hits them.
	for range 20 {
		status, body, _ = fetch(t, srv.URL, "/tuple")
		require.Equal(t, 200, status)
		require.Equal(t, "tuple", body)
	}
}

func TestASGIRequestTimeout(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "asgi", RequestTimeout: 200 * time.Millisecond})
	srv := serve(t, h)
	start := time.Now()
	status, body, _ := fetch(t, srv.URL, "/slow")
	assert.Equal(t, http.StatusGatewayTimeout, status)
	assert.Equal(t, "request timed out\n", body)
	assert.Less(t, time.Since(start), 2*time.Second)
	var events []string
	assert.True(t, waitFor(2*time.Second, func() bool {
		getJSON(t, h, "/events", &events)
		return strings.Contains(strings.Join(events, ","), "slow cancelled")
	}), "the task is cancelled: %v", events)
}

func TestShutdownWithStuckRequest(t *testing.T) {
	h, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "behave", RequestTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	srv := serve(t, h)
	status, _, _ := fetch(t, srv.URL, "/sleep?1.0") // 504 at 100ms; Python sleeps on
	require.Equal(t, http.StatusGatewayTimeout, status)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = h.Shutdown(ctx)
	require.Error(t, err, "a request is stuck in Python")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 503, do(h, "GET", "/tuple", nil).Code, "closed to new requests meanwhile")

	assert.Error(t, wsgi.Finalize(context.Background()), "never finalize with handlers open")

	require.NoError(t, h.Close(), "once Python returns, the handler closes")
	require.NoError(t, h.Close())
}

// TestStalledUnreadBody: a client that stalls in a body the app never
// reads gets its response at once and holds no Python thread meanwhile.
func TestStalledUnreadBody(t *testing.T) {
	h, _ := behave(t, func(o *wsgi.Options) {
		o.Threads = 1
		o.BodyReadTimeout = time.Second
	})
	srv := serve(t, h)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /tuple HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the response comes before the body is drained")
	assert.Equal(t, 200, resp.StatusCode)
	require.True(t, waitFor(time.Second, func() bool { return h.Stats().Busy == 0 }),
		"the thread is free while the connection drains")
	assert.Equal(t, "tuple", do(h, "GET", "/tuple", nil).Body.String())
}
