package wsgi_test

import (
	"bufio"
	"fmt"
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
			h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: app.app, Protocol: app.protocol, BodyReadTimeout: 300 * time.Millisecond})
			srv := serve(t, h)
			addr := srv.Listener.Addr().String()

			start := time.Now()
			status, _ := rawPost(t, addr, "/echo", 100, []string{"only ten b"}, 0)
			assert.Equal(t, http.StatusRequestTimeout, status, "a stalled upload")
			assert.Less(t, time.Since(start), 3*time.Second)

			// Slow but steady: every read finishes within the bound.
			pieces := strings.Split("0123456789", "")
			status, body := rawPost(t, addr, "/echo", 10, pieces, 100*time.Millisecond)
			assert.Equal(t, http.StatusOK, status)
			assert.Equal(t, "0123456789", body)
		})
	}
}

func TestBodyReadTimeoutRaisesInApp(t *testing.T) {
	h, _ := behave(t, func(o *wsgi.Options) { o.BodyReadTimeout = 200 * time.Millisecond })
	srv := serve(t, h)
	status, body := rawPost(t, srv.Listener.Addr().String(), "/read-error", 50, []string{"abc"}, 0)
	assert.Equal(t, 200, status)
	assert.Equal(t, "OSError: wsgi: the client sent no request body data for 200ms", body)
}
