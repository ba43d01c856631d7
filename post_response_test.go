package wsgi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// rawClient is one keep-alive connection that timestamps the last byte of
// each response it reads.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, srv string) *rawClient {
	t.Helper()
	u, err := url.Parse(srv)
	require.NoError(t, err)
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

// get sends a GET and reads the whole response: every body byte and, for
// a chunked body, the terminator. It returns the response, its body and
// how long it took until the last byte.
func (rc *rawClient) get(path string) (*http.Response, string, time.Duration) {
	rc.t.Helper()
	return rc.send("GET", path)
}

// send is get for any method, without a body.
func (rc *rawClient) send(method, path string) (*http.Response, string, time.Duration) {
	rc.t.Helper()
	start := time.Now()
	_, err := fmt.Fprintf(rc.c, "%s %s HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n", method, path)
	require.NoError(rc.t, err)
	resp, err := http.ReadResponse(rc.br, nil)
	require.NoError(rc.t, err)
	body, err := io.ReadAll(resp.Body) // for chunked: up to the last CRLF
	require.NoError(rc.t, err)
	return resp, string(body), time.Since(start)
}

// The client has the whole response, and the connection is free for its
// next request, as soon as the iterable is exhausted: close() runs after,
// still holding the thread, on the request's thread state.
func TestWSGICloseAfterResponse(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "post_response"})
	srv := serve(t, h)
	for _, tt := range []struct{ path, body string }{
		{"/fixed?d=0.8&tag=fixed", "Hello, world!"},
		{"/stream?d=0.8&tag=stream", "chunk 0\nchunk 1\nchunk 2\n"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			rc := dialRaw(t, srv.URL)
			resp, body, took := rc.get(tt.path)
			assert.Equal(t, 200, resp.StatusCode)
			assert.Equal(t, tt.body, body)
			assert.Less(t, took, 400*time.Millisecond, "the response waited for close()")
			assert.Equal(t, 1, h.Stats().Busy, "close() still holds the thread")

			// The same connection serves the next request at once.
			resp, _, took = rc.get("/report")
			assert.Equal(t, 200, resp.StatusCode)
			assert.Less(t, took, 400*time.Millisecond, "the connection waited for close()")

			require.True(t, waitFor(5*time.Second, func() bool { return h.Stats().Busy == 0 }))
			tag := strings.TrimPrefix(tt.path[strings.Index(tt.path, "tag="):], "tag=")
			var reports []map[string]any
			getJSON(t, h, "/report", &reports)
			var found bool
			for _, r := range reports {
				if r["tag"] == tag {
					found = true
					assert.Equal(t, tag, r["local"], "close() sees the request's threading.local")
					assert.Equal(t, tag, r["contextvar"], "close() sees the request's context")
				}
			}
			assert.True(t, found, "close() ran: %v", reports)
		})
	}

	t.Run("close raises", func(t *testing.T) {
		status, body, truncated := fetch(t, srv.URL, "/raise?d=0.05")
		assert.Equal(t, 200, status)
		assert.Equal(t, "body", body)
		assert.False(t, truncated)
		assert.True(t, waitFor(5*time.Second, func() bool {
			return strings.Contains(logs.String(), "ValueError: close failed after the response")
		}), logs.String())
	})
}

// RequestTimeout still bounds what close() does after the response.
func TestWSGICloseAfterResponseTimeout(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "post_response", RequestTimeout: 300 * time.Millisecond})
	srv := serve(t, h)
	rc := dialRaw(t, srv.URL)
	resp, body, took := rc.get("/spin?d=10&tag=spin")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "spin", body)
	assert.Less(t, took, 300*time.Millisecond)
	require.True(t, waitFor(5*time.Second, func() bool { return h.Stats().Busy == 0 }),
		"close() was interrupted at the request timeout")
	var reports []map[string]any
	getJSON(t, h, "/report", &reports)
	require.NotEmpty(t, reports, logs.String())
	assert.Equal(t, "RequestTimeout", reports[len(reports)-1]["interrupted"])
	assert.Contains(t, logs.String(), "timed out")
	assert.Equal(t, 0, h.Stats().TimedOut)
}

// ASGI: the response is complete at the last body message; the rest of the
// task (Starlette's BackgroundTasks) runs after, holding its slot, bounded
// by RequestTimeout, its exceptions logged.
func TestASGIWorkAfterResponse(t *testing.T) {
	h, logs := asgiRaw(t)
	srv := serve(t, h)
	events := func() []string {
		var ev []string
		getJSON(t, h, "/events", &ev)
		return ev
	}
	for _, tt := range []struct {
		path, tag, body string
		chunked         bool
	}{
		{"/background?d=0.8&tag=fixed", "fixed", "Hello, world!", false},
		{"/background-stream?d=0.6&tag=stream", "stream", "chunk 0\nchunk 1\nchunk 2\n", true},
	} {
		t.Run(tt.path, func(t *testing.T) {
			rc := dialRaw(t, srv.URL)
			resp, body, took := rc.get(tt.path)
			assert.Equal(t, 200, resp.StatusCode)
			if tt.chunked {
				assert.Equal(t, []string{"chunked"}, resp.TransferEncoding, "the terminator is in the timing")
			}
			assert.Equal(t, tt.body, body)
			assert.Less(t, took, 300*time.Millisecond, "the response waited for the background work")
			assert.Equal(t, 1, h.Stats().Busy, "the task still holds its slot")

			resp, _, took = rc.get("/hello")
			assert.Equal(t, 200, resp.StatusCode)
			assert.Less(t, took, 300*time.Millisecond, "the connection waited for the background work")

			require.True(t, waitFor(5*time.Second, func() bool { return h.Stats().Busy == 0 }))
			ev := events()
			assert.Contains(t, ev, "background "+tt.tag+" received http.disconnect")
			assert.Contains(t, ev, "background done "+tt.tag)
		})
	}

	t.Run("raises", func(t *testing.T) {
		status, body, truncated := fetch(t, srv.URL, "/background-raise?d=0.05&tag=raise")
		assert.Equal(t, 200, status)
		assert.Equal(t, "Hello, world!", body)
		assert.False(t, truncated)
		assert.True(t, waitFor(5*time.Second, func() bool {
			return strings.Contains(logs.String(), "ValueError: background task failed")
		}), logs.String())
	})
}

func TestASGIWorkAfterResponseTimeout(t *testing.T) {
	h, logs := asgiRaw(t, func(o *wsgi.Options) { o.RequestTimeout = 300 * time.Millisecond })
	srv := serve(t, h)
	rc := dialRaw(t, srv.URL)
	resp, body, took := rc.get("/background?d=30&tag=forever")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "Hello, world!", body)
	assert.Less(t, took, 300*time.Millisecond)
	require.True(t, waitFor(5*time.Second, func() bool { return h.Stats().Busy == 0 }),
		"the task was cancelled at the request timeout")
	var ev []string
	getJSON(t, h, "/events", &ev)
	assert.Contains(t, ev, "background cancelled forever")
	assert.Contains(t, logs.String(), "timed out")
}

// An ASGI app that raises after http.response.start but before any body:
// nothing reached the wire, so the client gets a clean 500.
func TestASGIRaiseBeforeBody(t *testing.T) {
	h, logs := asgiRaw(t)
	srv := serve(t, h)
	status, body, truncated := fetch(t, srv.URL, "/start-then-raise")
	assert.Equal(t, 500, status)
	assert.Equal(t, "500 Internal Server Error\n", body)
	assert.False(t, truncated)
	assert.Contains(t, logs.String(), "boom after start, before any body")
}

// Trailers announced with a Trailer header (RFC 9110 section 6.6.2) are
// accepted, announced on the wire and arrive.
func TestASGIDeclaredTrailers(t *testing.T) {
	h, _ := asgiRaw(t)
	srv := serve(t, h)
	resp, err := http.Get(srv.URL + "/trailers-declared")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "with trailers", string(readAll(t, resp.Body)))
	assert.Equal(t, "abc123", resp.Trailer.Get("X-Checksum"))
	assert.Equal(t, "2", resp.Trailer.Get("X-Count"))

	// On the wire: the head announces them, the chunked body ends with them.
	rc := dialRaw(t, srv.URL)
	_, err = fmt.Fprintf(rc.c, "GET /trailers-declared HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	raw, _ := io.ReadAll(rc.br)
	head, rest, ok := strings.Cut(string(raw), "\r\n\r\n")
	require.True(t, ok, string(raw))
	assert.Contains(t, strings.ToLower(head), "\r\ntrailer: x-checksum, x-count")
	assert.Contains(t, strings.ToLower(head), "transfer-encoding: chunked")
	assert.True(t, strings.HasSuffix(strings.ToLower(rest), "0\r\nx-checksum: abc123\r\nx-count: 2\r\n\r\n"), "%q", rest)
}

// A chunked request body shows in the scope's headers, as under uvicorn.
func TestASGIScopeChunked(t *testing.T) {
	h, _ := asgiRaw(t)
	srv := serve(t, h)
	resp, err := http.Post(srv.URL+"/scope", "text/plain", io.MultiReader(strings.NewReader("abc")))
	require.NoError(t, err)
	var s map[string]any
	require.NoError(t, json.Unmarshal(readAll(t, resp.Body), &s))
	assert.Contains(t, s["headers"], []any{"transfer-encoding", "chunked"})
}

// The frameworks' own post-response hooks: FastAPI's BackgroundTasks (with
// a plain and a streaming response) and Flask's call_on_close.
func TestFrameworkWorkAfterResponse(t *testing.T) {
	skipWithoutFrameworks(t)
	t.Run("fastapi", func(t *testing.T) {
		srv := afwFastAPI.server(t)
		rc := dialRaw(t, srv.URL)
		resp, body, took := rc.send("POST", "/fast/background?tag=post")
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "queued", body)
		assert.Less(t, took, 400*time.Millisecond, "the response waited for BackgroundTasks")
		resp, body, took = rc.get("/fast/background-stream?tag=stream")
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "chunk 0\nchunk 1\nchunk 2\n", body)
		assert.Less(t, took, 400*time.Millisecond, "the streamed response waited for its background task")
		require.True(t, waitFor(5*time.Second, func() bool {
			_, body, _ := rc.get("/fast/background-done")
			return strings.Contains(body, `"post"`) && strings.Contains(body, `"stream"`)
		}), "the background tasks ran")
	})
	t.Run("flask", func(t *testing.T) {
		srv := fwFlask.server(t, nil)
		rc := dialRaw(t, srv.URL)
		resp, body, took := rc.get("/flask/call-on-close?tag=flask")
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "closing later", body)
		assert.Less(t, took, 400*time.Millisecond, "the response waited for call_on_close")
		require.True(t, waitFor(5*time.Second, func() bool {
			_, body, _ := rc.get("/flask/closed-on")
			return strings.Contains(body, `"flask"`)
		}), "call_on_close ran")
	})
}

// An app whose bodies have nothing to close runs inline (no goroutine hop)
// after a run of such responses; its first body with a close() is flushed
// to the client before close() runs, and from then on every request hops
// again, so that close() never holds a response back.
func TestWSGIInlineUntilABodyHasClose(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "post_response"})
	srv := serve(t, h)
	rc := dialRaw(t, srv.URL)
	for range 80 { // /report answers with a list
		resp, _, _ := rc.get("/report")
		require.Equal(t, 200, resp.StatusCode)
	}
	resp, body, took := rc.get("/fixed?d=0.5&tag=first-close")
	assert.Equal(t, "Hello, world!", body)
	assert.Less(t, took, 300*time.Millisecond, "the response was flushed before close()")
	_, _, took = rc.get("/report")
	assert.Greater(t, took, 200*time.Millisecond, "inline, the connection's next request waited for that close()")
	assert.Equal(t, 200, resp.StatusCode)

	for _, path := range []string{"/stream?d=0.8&tag=after-1", "/report", "/stream?d=0.8&tag=after-2"} {
		resp, _, took := rc.get(path)
		assert.Equal(t, 200, resp.StatusCode)
		assert.Less(t, took, 400*time.Millisecond, "%s: once a body had a close(), every request hops", path)
	}
}
