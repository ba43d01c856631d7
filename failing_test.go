package wsgi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// fetch does a GET over a real connection and reports whether the body
// ended early (the handler aborted the connection).
func fetch(t *testing.T, srv string, path string) (status int, body string, truncated bool) {
	t.Helper()
	resp, err := http.Get(srv + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err != nil
}

func TestAppFailures(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing"})
	srv := serve(t, h)
	tests := []struct {
		path      string
		status    int
		body      string // exact body, unless truncated
		truncated bool   // the client sees a cut connection
		log       string // a substring of the log
		closes    int    // close() calls expected for this path
	}{
		{path: "/raise-before", status: 500, body: "500 Internal Server Error\n", log: "ValueError: boom before start_response"},
		{path: "/raise-after-start", status: 500, body: "500 Internal Server Error\n", log: "boom after start_response"},
		{path: "/raise-first-chunk", status: 500, body: "500 Internal Server Error\n", log: "failed at chunk 0", closes: 1},
		{path: "/raise-mid-stream", status: 200, body: "first chunk\n", truncated: true, log: "failed at chunk 1", closes: 1},
		{path: "/empty-then-raise", status: 500, body: "500 Internal Server Error\n", log: "failed at chunk 1", closes: 1},
		{path: "/close-raises", status: 200, body: "body", log: "ValueError: close failed", closes: 1},
		{path: "/return-none", status: 500, body: "500 Internal Server Error\n", log: "'NoneType' object is not iterable"},
		{path: "/return-int", status: 500, body: "500 Internal Server Error\n", log: "'int' object is not iterable"},
		{path: "/return-str", status: 500, body: "500 Internal Server Error\n", log: "returned str; it must return an iterable of bytes"},
		{path: "/return-bytes", status: 500, body: "500 Internal Server Error\n", log: "returned bytes; it must return an iterable of bytes"},
		{path: "/yield-str", status: 500, body: "500 Internal Server Error\n", log: "yielded str; body chunks must be bytes", closes: 1},
		{path: "/yield-str-later", status: 200, body: "first\n", truncated: true, log: "yielded str", closes: 1},
		{path: "/list-with-str", status: 500, body: "500 Internal Server Error\n", log: "body item 1 is str"},
		{path: "/no-start-response", status: 500, body: "500 Internal Server Error\n", log: "without calling start_response", closes: 1},
		{path: "/no-start-empty", status: 500, body: "500 Internal Server Error\n", log: "without calling start_response"},
		{path: "/twice", status: 200, body: "RuntimeError: wsgi: start_response called a second time without exc_info"},
		{path: "/exc-info-before-body", status: 503, body: "replaced", closes: 1},
		{path: "/exc-info-after-body", status: 200, body: "already sent\n", truncated: true, log: "KeyError: 'late'"},
		{path: "/bytes-status", status: 500, body: "500 Internal Server Error\n", log: "status must be str, not bytes"},
		{path: "/non-latin1-header", status: 500, body: "500 Internal Server Error\n", log: "is not latin-1 text"},
		{path: "/header-not-tuple", status: 500, body: "500 Internal Server Error\n", log: "must be a (name, value) tuple"},
		{path: "/headers-not-list", status: 500, body: "500 Internal Server Error\n", log: "response_headers must be a list"},
		{path: "/header-int-value", status: 500, body: "500 Internal Server Error\n", log: "header value must be str, not int"},
		{path: "/cl-short", status: 200, body: "12345", truncated: true, log: "app sent less than its Content-Length", closes: 1},
		{path: "/cl-long", status: 200, body: "0123456789", log: "excess was dropped", closes: 1},
		{path: "/cl-long-list", status: 200, body: "0123456789", log: "excess was dropped"},
		{path: "/system-exit", status: 500, body: "500 Internal Server Error\n", log: "SystemExit: 7"},
		{path: "/keyboard-interrupt", status: 500, body: "500 Internal Server Error\n", log: "KeyboardInterrupt"},
		{path: "/generator-exit", status: 500, body: "500 Internal Server Error\n", log: "GeneratorExit"},
		{path: "/system-exit-in-body", status: 200, body: "a", truncated: true, log: "SystemExit: 3"},
		{path: "/write-str", status: 500, body: "500 Internal Server Error\n", log: "write() argument must be bytes, not str"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body, truncated := fetch(t, srv.URL, tt.path)
			assert.Equal(t, tt.status, status)
			assert.Equal(t, tt.body, body)
			assert.Equal(t, tt.truncated, truncated, "connection aborted")
			if tt.log != "" {
				// close() runs after the response: its log may follow it.
				assert.True(t, waitFor(5*time.Second, func() bool { return strings.Contains(logs.String(), tt.log) }),
					"log %q in %s", tt.log, logs.String())
			}
		})
	}
	// close() ran exactly once per request, on every path (once the
	// last one, which runs after its response, is done).
	closes := map[string]float64{}
	waitFor(5*time.Second, func() bool {
		getJSON(t, h, "/closes", &closes)
		return h.Stats().Busy == 0
	})
	getJSON(t, h, "/closes", &closes)
	for _, tt := range tests {
		assert.Equal(t, float64(tt.closes), closes[tt.path], "close() calls for %s", tt.path)
	}
	// The host is alive and serves normally after all of that.
	for range 100 {
		require.Equal(t, 200, do(h, "GET", "/closes", nil).Code)
	}
}

func TestTracebackLogged(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing"})
	do(h, "GET", "/raise-before", nil)
	var found bool
	for _, rec := range logs.records(t) {
		if rec["msg"] == "wsgi: app failed" {
			found = true
			assert.Equal(t, "ValueError: boom before start_response", rec["error"])
			assert.Contains(t, rec["traceback"], "Traceback (most recent call last)")
			assert.Contains(t, rec["traceback"], "failing.py")
			assert.Equal(t, "/raise-before", rec["path"])
			assert.Equal(t, "failing:application", rec["app"])
		}
	}
	assert.True(t, found, logs.String())
}

func TestDebugTraceback(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing", Debug: true})
	rec := do(h, "GET", "/raise-before", nil)
	assert.Equal(t, 500, rec.Code)
	assert.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Contains(t, rec.Body.String(), "Traceback (most recent call last)")
	assert.Contains(t, rec.Body.String(), "ValueError: boom before start_response")
}

func TestStatusValidation(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing"})
	tests := []struct {
		status string // Python escapes allowed
		ok     bool
	}{
		{`200 OK`, true},
		{`404 Not Found`, true},
		{`299 `, true},
		{`999 Max`, true},
		{`200 caf\xe9`, true},
		{`200 OK\r\nX-Evil: 1`, false},
		{`200 OK\n`, false},
		{`200 O\x00K`, false},
		{`200`, false},
		{`200OK`, false},
		{`99 Low`, false},
		{`1000 High`, false},
		{`100 Continue`, false},
		{`101 Switching Protocols`, false},
		{`abc OK`, false},
		{` 200 OK`, false},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			rec := do(h, "GET", "/bad-status?"+escape(tt.status), nil)
			if tt.ok {
				assert.Equal(t, "accepted", rec.Body.String())
				assert.Equal(t, tt.status[:3], fmt.Sprint(rec.Code))
			} else {
				assert.Equal(t, 200, rec.Code)
				assert.True(t, strings.HasPrefix(rec.Body.String(), "caught ValueError: wsgi: "), rec.Body.String())
			}
		})
	}
}

func TestHeaderValidation(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing"})
	srv := serve(t, h)
	tests := []struct {
		name, value string // Python escapes allowed
		ok          bool
	}{
		{`X-Ok`, `plain`, true},
		{`X-Latin`, `caf\xe9`, true},
		{`X-Tab`, `a\tb`, true},
		{`X-CR`, `a\rb`, false},
		{`X-LF`, `a\nSet-Cookie: evil=1`, false},
		{`X-NUL`, `a\x00b`, false},
		{`X-DEL`, `a\x7fb`, false},
		{`X-Esc`, `a\x1bb`, false},
		{`X Space`, `v`, false},
		{`X:Colon`, `v`, false},
		{``, `v`, false},
		{`X-\xe9`, `v`, false},
		{`Connection`, `close`, false},
		{`keep-alive`, `timeout=5`, false},
		{`Transfer-Encoding`, `chunked`, false},
		{`Upgrade`, `websocket`, false},
		{`TE`, `trailers`, false},
		{`Trailer`, `X`, false},
		{`Proxy-Authenticate`, `Basic`, false},
		{`Content-Length`, `abc`, false},
		{`Content-Length`, `-1`, false},
		{`Content-Length`, `8`, true},
		{`X-Snowman`, `\u2603`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			q := "/bad-header?" + escape(tt.name) + "=" + escape(tt.value)
			resp, err := http.Get(srv.URL + q)
			require.NoError(t, err)
			body := readAll(t, resp.Body)
			if tt.ok {
				assert.Equal(t, 200, resp.StatusCode)
				assert.Equal(t, "accepted", string(body))
				return
			}
			assert.Equal(t, 500, resp.StatusCode)
			assert.Equal(t, "500 Internal Server Error\n", string(body))
			assert.Empty(t, resp.Header.Get("X-Evil"))
			assert.Empty(t, resp.Header.Get("Set-Cookie"))
		})
	}
	assert.Contains(t, logs.String(), "wsgi: hop-by-hop header")
}

// escape encodes s for a query string that the app decodes with unquote.
func escape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
