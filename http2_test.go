package wsgi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// serveH2 serves h over HTTP/2 over TLS on loopback; the client speaks
// HTTP/2 only.
func serveH2(t testing.TB, h http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Timeout = 10 * time.Second
	return srv, client
}

// getH2 fetches path and checks that HTTP/2 served it.
func getH2(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.ProtoMajor != 2 {
		err = fmt.Errorf("served over %s", resp.Proto)
	}
	return resp.StatusCode, string(body), err
}

// TestHTTP2Requests: HTTP/2 runs each stream's handler on a goroutine of
// its own; the Python part of its requests runs on the Handler's pooled
// goroutines instead (gopool.go), inline or not. Concurrent streams are
// all answered, the pool's goroutines stay within Threads, and they end
// with the Handler.
func TestHTTP2Requests(t *testing.T) {
	before := runtime.NumGoroutine()
	const threads = 3
	h, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "behave", Threads: threads})
	require.NoError(t, err, "%+v", err)
	closed := false
	defer func() {
		if !closed {
			_ = h.Close()
		}
	}()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	client := srv.Client()
	client.Timeout = 10 * time.Second

	// Past the responses without a close() that make requests inline,
	// then every path: inline lists and tuples, and bodies with a close()
	// that end that (generators, write(), file_wrapper).
	for range 70 {
		code, body, err := getH2(client, srv.URL+"/tuple")
		require.NoError(t, err)
		require.Equal(t, 200, code, body)
	}
	paths := []string{"/tuple", "/big-list", "/environ/x", "/stream?n=5", "/write", "/bytesio-wrapper"}
	idle := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			for j := range 10 {
				p := paths[(i+j)%len(paths)]
				code, _, err := getH2(client, srv.URL+p)
				if assert.NoError(t, err, p) {
					assert.Equal(t, 200, code, p)
				}
			}
		})
	}
	wg.Wait()
	assert.True(t, waitFor(2*time.Second, func() bool { return runtime.NumGoroutine() <= idle+threads }),
		"goroutines once idle: %d, before the concurrent requests %d, threads %d", runtime.NumGoroutine(), idle, threads)

	client.CloseIdleConnections()
	srv.Close()
	require.NoError(t, h.Close())
	closed = true
	assert.True(t, waitFor(2*time.Second, func() bool { return runtime.NumGoroutine() <= before+1 }),
		"goroutines after Close: %d, before New %d", runtime.NumGoroutine(), before)
}

// TestHTTP2PostResponse: over HTTP/2 too, the client has the response
// before the body's close() runs, and close() runs on the request's
// Python thread (threading.local and contextvars as the app set them).
func TestHTTP2PostResponse(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "post_response"})
	srv, client := serveH2(t, h)
	_, _, err := getH2(client, srv.URL+"/report") // the connection, before the clock starts
	require.NoError(t, err)
	start := time.Now()
	code, body, err := getH2(client, srv.URL+"/fixed?d=0.5&tag=h2-close")
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.Equal(t, "Hello, world!", body)
	assert.Less(t, time.Since(start), 400*time.Millisecond, "the response came before close() ended")

	var reports []map[string]any
	require.True(t, waitFor(3*time.Second, func() bool {
		_, body, err := getH2(client, srv.URL+"/report")
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal([]byte(body), &reports), body)
		return len(reports) == 1
	}), "close() ran")
	assert.Equal(t, "h2-close", reports[0]["local"], "threading.local in close()")
	assert.Equal(t, "h2-close", reports[0]["contextvar"], "contextvars in close()")
}

// TestHTTP2Abort: a response that fails after its head is cut, as over
// HTTP/1.1: the client sees the stream reset, not a short body that
// looks whole.
func TestHTTP2Abort(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing"})
	srv, client := serveH2(t, h)
	for range 3 {
		_, body, err := getH2(client, srv.URL+"/raise-mid-stream")
		assert.Error(t, err, "body %q", body)
	}
	code, _, err := getH2(client, srv.URL+"/raise-before")
	require.NoError(t, err)
	assert.Equal(t, 500, code)
}
