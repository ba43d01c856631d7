package wsgi_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

func TestAccessLog(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing", AccessLog: true})
	srv := serve(t, h)
	for _, p := range []string{"/closes", "/raise-before", "/raise-mid-stream"} {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		_, _ = readAllErr(resp)
	}
	byURI := map[string]map[string]any{}
	for _, rec := range logs.records(t) {
		if rec["msg"] == "wsgi: access" {
			byURI[rec["uri"].(string)] = rec
			assert.Equal(t, "failing:application", rec["app"])
		}
	}
	require.Len(t, byURI, 3, logs.String())
	assert.Equal(t, 200.0, byURI["/closes"]["status"])
	assert.Equal(t, "GET", byURI["/closes"]["method"])
	assert.Greater(t, byURI["/closes"]["bytes"], 0.0)
	assert.Equal(t, 500.0, byURI["/raise-before"]["status"])
	assert.Equal(t, true, byURI["/raise-mid-stream"]["aborted"])
}

func TestLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "WSGI.log")
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing", Name: "blog", LogFile: path})
	do(h, "GET", "/raise-before", nil)
	require.NoError(t, h.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(b)
	assert.Contains(t, text, "app=blog")
	assert.Contains(t, text, "boom before start_response")
	assert.Contains(t, text, "Traceback")
	assert.Contains(t, logs.String(), "boom before start_response", "the Logger gets the records too")

	// Appended, not truncated, by the next handler.
	h2, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing", Name: "blog", LogFile: path})
	do(h2, "GET", "/raise-after-start", nil)
	require.NoError(t, h2.Close())
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), text))
	assert.Contains(t, string(b), "boom after start_response")
}

func readAllErr(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
