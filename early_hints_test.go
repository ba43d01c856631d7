package wsgi_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// getWithHints fetches url and returns the 1xx responses' headers seen
// before the final one, and the final response's body.
func getWithHints(t *testing.T, url string) (hints []http.Header, resp *http.Response, body string) {
	t.Helper()
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusEarlyHints {
			hints = append(hints, http.Header(h).Clone())
		}
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", url, nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return hints, resp, string(readAll(t, resp.Body))
}

var wantPreloads = []string{"</style.css>; rel=preload; as=style", "</app.js>; rel=preload; as=script"}

// 103 Early Hints: validated like any header, sent before the final
// response and only then, not repeated in it, never to HTTP/1.0 clients.
func TestEarlyHints(t *testing.T) {
	wsgiH, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "early_hints"})
	asgiH, _ := asgiRaw(t)
	for _, tt := range []struct {
		name       string
		h          http.Handler
		hints, bad string
	}{
		{"wsgi", wsgiH, "/hints", "/bad"},
		{"asgi", asgiH, "/early-hints", "/early-hint-bad"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.h)
			hints, resp, body := getWithHints(t, srv.URL+tt.hints)
			require.Len(t, hints, 1)
			assert.Equal(t, wantPreloads, hints[0]["Link"])
			assert.Equal(t, 200, resp.StatusCode)
			assert.Equal(t, "hinted", body)
			assert.Empty(t, resp.Header["Link"], "hints are not part of the final response")

			// Response splitting is refused (gunicorn#3585).
			hints, _, body = getWithHints(t, srv.URL+tt.bad)
			assert.Empty(t, hints)
			assert.Contains(t, body, "ValueError: wsgi: invalid value")

			// No 1xx for an HTTP/1.0 client.
			rc := dialRaw(t, srv.URL)
			_, err := fmt.Fprintf(rc.c, "GET %s HTTP/1.0\r\n\r\n", tt.hints)
			require.NoError(t, err)
			raw, _ := io.ReadAll(rc.br)
			assert.True(t, strings.HasPrefix(string(raw), "HTTP/1.0 200 OK\r\n"), "%q", raw)
			assert.NotContains(t, string(raw), "103")
		})
	}

	t.Run("wsgi after the body started", func(t *testing.T) {
		srv := serve(t, wsgiH)
		hints, _, body := getWithHints(t, srv.URL+"/late")
		assert.Empty(t, hints)
		assert.Equal(t, "started\nRuntimeError: wsgi: early hints after the response started", body)
	})

	t.Run("on the wire", func(t *testing.T) {
		srv := serve(t, wsgiH)
		rc := dialRaw(t, srv.URL)
		_, err := fmt.Fprintf(rc.c, "GET /hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		require.NoError(t, err)
		tp := textproto.NewReader(bufio.NewReader(rc.br))
		line, err := tp.ReadLine()
		require.NoError(t, err)
		assert.Equal(t, "HTTP/1.1 103 Early Hints", line)
		h, err := tp.ReadMIMEHeader()
		require.NoError(t, err)
		assert.Equal(t, wantPreloads, h["Link"])
		line, err = tp.ReadLine()
		require.NoError(t, err)
		assert.Equal(t, "HTTP/1.1 200 OK", line)
	})
}
