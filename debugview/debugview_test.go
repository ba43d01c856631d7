package debugview_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
	"github.com/gowsgi/wsgi/debugview"
)

func newHandler(t *testing.T, app, protocol string) *wsgi.Handler {
	t.Helper()
	h, err := wsgi.New(wsgi.Options{Dir: "../testdata", App: app, Protocol: protocol, Name: app,
		Threads: 2, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err, "%+v", err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func get(t *testing.T, h http.Handler, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	resp := rec.Result()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// TestViewEscapes: a request whose path is markup lingers in the app; the
// page shows the path as text, with the app's function on its stack, and
// the JSON has it as it is.
func TestViewEscapes(t *testing.T) {
	for _, tt := range []struct{ app, protocol, function string }{
		{"liveview", "wsgi", "linger_in_wsgi_view"},
		{"liveview_asgi", "asgi", "linger_in_asgi_view"},
	} {
		t.Run(tt.protocol, func(t *testing.T) {
			h := newHandler(t, tt.app, tt.protocol)
			view := debugview.New(debugview.Local(3, h))
			const evil = `/linger/<script>alert("x")</script>&amp;`
			go func() {
				r := httptest.NewRequest("GET", "/linger/%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E&amp;?1.5", nil)
				h.ServeHTTP(httptest.NewRecorder(), r)
			}()
			var page debugview.Page
			require.True(t, waitFor(5*time.Second, func() bool {
				_, body := get(t, view, "/debug/wsgi/json")
				page = debugview.Page{}
				require.NoError(t, json.Unmarshal([]byte(body), &page), body)
				return len(page.Processes) == 1 && len(page.Processes[0].Apps) == 1 &&
					len(page.Processes[0].Apps[0].Requests) == 1 && len(page.Processes[0].Apps[0].Requests[0].Stack) > 0
			}), "the lingering request in the JSON")
			p := page.Processes[0]
			assert.Equal(t, 3, p.Worker)
			assert.Positive(t, p.PID)
			r := p.Apps[0].Requests[0]
			assert.Equal(t, evil, r.Path)
			assert.Equal(t, "in python", r.State)
			var functions []string
			for _, f := range r.Stack {
				functions = append(functions, f.Function)
			}
			assert.Contains(t, functions, tt.function)

			resp, body := get(t, view, "/debug/wsgi/")
			assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			assert.NotContains(t, body, "<script")
			assert.Contains(t, body, "/linger/&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;")
			assert.Contains(t, body, " in "+tt.function)
			assert.Contains(t, body, "Worker 3")
			assert.Contains(t, body, `<meta http-equiv="refresh" content="2">`)
		})
	}
}

// TestMethods: the view only reads.
func TestMethods(t *testing.T) {
	view := debugview.New(func(context.Context) debugview.Page { return debugview.Page{} })
	rec := httptest.NewRecorder()
	view.ServeHTTP(rec, httptest.NewRequest("POST", "/debug/wsgi/", strings.NewReader("x")))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}
