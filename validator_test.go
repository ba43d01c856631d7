package wsgi_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// TestWSGIRefValidator serves the test app wrapped in
// wsgiref.validate.validator, over a real connection, and expects no
// violation of PEP 3333 on either side.
func TestWSGIRefValidator(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "validated", Prefix: "/v"})
	srv := serve(t, h)
	file := filepath.Join(t.TempDir(), "blob")
	require.NoError(t, os.WriteFile(file, []byte(strings.Repeat("file data ", 1000)), 0o600))

	requests := []struct{ method, path, body string }{
		{"GET", "/v/environ/caf%C3%A9?a=b", ""},
		{"GET", "/v/stream?n=5", ""},
		{"GET", "/v/write", ""},
		{"GET", "/v/head", ""},
		{"HEAD", "/v/head", ""},
		{"GET", "/v/tuple", ""},
		{"GET", "/v/cookies", ""},
		{"GET", "/v/big-list", ""},
		{"GET", "/v/file?" + file, ""},
		{"GET", "/v/bytesio-wrapper", ""},
		{"POST", "/v/upload", strings.Repeat("upload ", 20000)},
		{"POST", "/v/input?ops=read:3,readline,readline:2,readlines,read:5", "ab\ncd\nef\ngh"},
		{"POST", "/v/input?ops=iter", "one\ntwo\n"},
		{"GET", "/v/status?204%20No%20Content", ""},
	}
	for _, r := range requests {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			req, err := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader(r.body))
			require.NoError(t, err)
			if r.body != "" {
				req.Header.Set("Content-Type", "application/octet-stream")
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			readAll(t, resp.Body)
			assert.NotEqual(t, 500, resp.StatusCode, logs.String())
		})
	}
	var violations []string
	getJSON(t, h, "/v/violations", &violations)
	assert.Empty(t, violations)
	assert.NotContains(t, logs.String(), `"level":"ERROR"`)
}
