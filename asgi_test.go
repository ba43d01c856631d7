package wsgi_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

func asgiRaw(t *testing.T, opts ...func(*wsgi.Options)) (*wsgi.Handler, *logBuffer) {
	o := wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "asgi"}
	for _, f := range opts {
		f(&o)
	}
	return newHandler(t, o)
}

func TestASGIHello(t *testing.T) {
	h, _ := asgiRaw(t)
	rec := do(h, "GET", "/hello", nil)
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, "Hello, world!", rec.Body.String())
	assert.Equal(t, "text/plain", rec.Header().Get("Content-Type"))
}

func TestASGIAutoDetect(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "auto"})
	assert.Equal(t, "Hello, world!", do(h, "GET", "/hello", nil).Body.String())
	w, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "hello", Protocol: "auto"})
	assert.Equal(t, "Hello, world!", do(w, "GET", "/", nil).Body.String())
}

func TestASGIScope(t *testing.T) {
	h, _ := asgiRaw(t, func(o *wsgi.Options) {
		o.Prefix = "/mnt"
		o.Env = map[string]string{"APP_MODE": "test"}
	})
	r := newRequest("GET", "/mnt/scope/caf%C3%A9?a=%20b", "")
	r = r.WithContext(wsgi.WithEnviron(r.Context(), map[string]string{"REMOTE_USER": "alice"}))
	r.Header.Add("X-Multi", "1")
	r.Header.Add("X-Multi", "2")
	rec := record(h, r)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	s := decode(t, rec.Body.Bytes())
	assert.Equal(t, "http", s["type"])
	assert.Equal(t, map[string]any{"version": "3.0", "spec_version": "2.4"}, s["asgi"])
	assert.Equal(t, "1.1", s["http_version"])
	assert.Equal(t, "GET", s["method"])
	assert.Equal(t, "http", s["scheme"])
	assert.Equal(t, "/mnt", s["root_path"])
	assert.Equal(t, "/mnt/scope/café", s["path"], "the full path, root_path included, as the spec says")
	assert.Equal(t, "/mnt/scope/caf%C3%A9", s["raw_path"])
	assert.Equal(t, "a=%20b", s["query_string"])
	assert.Equal(t, map[string]any{"started": "yes"}, s["state"], "lifespan state reaches the request")
	assert.Equal(t, []any{"environ", "http.response.early_hint", "http.response.pathsend", "http.response.trailers"}, s["extensions"])
	assert.Equal(t, map[string]any{"APP_MODE": "test", "REMOTE_USER": "alice"}, s["environ"],
		"Options.Env and WithEnviron (auth) reach the scope")
	assert.Equal(t, []any{"192.0.2.1", 1234.0}, s["client"])
	assert.Equal(t, []any{"example.com", 80.0}, s["server"])
	headers := s["headers"].([]any)
	assert.Contains(t, headers, []any{"host", "example.com"})
	assert.Contains(t, headers, []any{"x-multi", "1"})
	assert.Contains(t, headers, []any{"x-multi", "2"})
}

func TestASGIBody(t *testing.T) {
	h, _ := asgiRaw(t)
	srv := serve(t, h)
	data := make([]byte, 3<<20+5)
	rand.New(rand.NewSource(4)).Read(data)
	sum := sha256.Sum256(data)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprint("chunked=", chunked), func(t *testing.T) {
			var body io.Reader = strings.NewReader(string(data))
			if chunked {
				body = io.MultiReader(body)
			}
			resp, err := http.Post(srv.URL+"/sha", "application/octet-stream", body)
			require.NoError(t, err)
			got := decode(t, readAll(t, resp.Body))
			assert.Equal(t, hex.EncodeToString(sum[:]), got["sha256"])
			assert.Equal(t, float64(len(data)), got["bytes"])
		})
	}
	assert.Equal(t, "abc", do(h, "POST", "/echo", strings.NewReader("abc")).Body.String())
}

func TestASGIStreaming(t *testing.T) {
	h, _ := asgiRaw(t)
	srv := serve(t, h)
	rec := do(h, "GET", "/stream", nil)
	assert.Equal(t, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n", rec.Body.String())

	resp, err := http.Get(srv.URL + "/gated")
	require.NoError(t, err)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "before gate\n", line, "the first message reaches the client while the app still runs")
	assert.Equal(t, "opened", do(h, "GET", "/open-gate", nil).Body.String())
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "after gate\n", string(rest))

	big := do(h, "GET", "/big", nil)
	assert.Equal(t, 64*65536, big.Body.Len(), "backpressure lets a big body through")
}

func TestASGIDisconnect(t *testing.T) {
	h, _ := asgiRaw(t)
	srv := serve(t, h)
	resp, err := http.Get(srv.URL + "/disconnect")
	require.NoError(t, err)
	_, err = io.ReadFull(resp.Body, make([]byte, 1024))
	require.NoError(t, err)
	resp.Body.Close()
	srv.CloseClientConnections()
	var events []string
	assert.True(t, waitFor(2*time.Second, func() bool {
		getJSON(t, h, "/events", &events)
		return strings.Contains(strings.Join(events, ","), "send raised OSError")
	}), "send() raises OSError once the client left: %v", events)

	resp, err = http.Get(srv.URL + "/wait-disconnect")
	require.NoError(t, err)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "waiting\n", line)
	resp.Body.Close()
	srv.CloseClientConnections()
	assert.True(t, waitFor(2*time.Second, func() bool {
		getJSON(t, h, "/events", &events)
		return strings.Contains(strings.Join(events, ","), "received http.disconnect")
	}), "receive() returns http.disconnect: %v", events)
}

func TestASGIErrors(t *testing.T) {
	h, logs := asgiRaw(t)
	srv := serve(t, h)
	tests := []struct {
		path      string
		status    int
		body      string
		truncated bool
		log       string
	}{
		{"/raise", 500, "500 Internal Server Error\n", false, "ValueError: boom in asgi"},
		{"/raise-after-start", 200, "partial", true, "boom after start"},
		{"/raise-after-complete", 500, "handled, then raised", false, "raised after completing its response"},
		{"/no-start", 500, "500 Internal Server Error\n", false, "returned without starting a response"},
		{"/body-before-start", 200, "RuntimeError: wsgi: http.response.body before http.response.start", false, ""},
		{"/start-twice", 200, "RuntimeError: wsgi: http.response.start sent twice", false, ""},
		{"/bad-header", 200, `ValueError: wsgi: invalid value "a\r\nb" for header "x-bad": control character '\r'`, false, ""},
		{"/system-exit", 500, "500 Internal Server Error\n", false, "SystemExit"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body, truncated := fetch(t, srv.URL, tt.path)
			assert.Equal(t, tt.status, status)
			assert.Equal(t, tt.body, body)
			assert.Equal(t, tt.truncated, truncated)
			if tt.log != "" {
				// Logged when the app's task ends, which may be after
				// the response.
				assert.True(t, waitFor(5*time.Second, func() bool { return strings.Contains(logs.String(), tt.log) }),
					"log %q in %s", tt.log, logs.String())
			}
		})
	}
	assert.Equal(t, "Hello, world!", do(h, "GET", "/hello", nil).Body.String(), "the loop survives SystemExit")
}

func TestASGIExtensions(t *testing.T) {
	h, _ := asgiRaw(t)
	srv := serve(t, h)
	resp, err := http.Get(srv.URL + "/trailers")
	require.NoError(t, err)
	assert.Equal(t, "with trailers", string(readAll(t, resp.Body)))
	assert.Equal(t, "abc123", resp.Trailer.Get("X-Checksum"))

	path := filepath.Join(t.TempDir(), "file")
	data := strings.Repeat("pathsend ", 100000)
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
	resp, err = http.Get(srv.URL + "/pathsend?" + path)
	require.NoError(t, err)
	assert.True(t, string(readAll(t, resp.Body)) == data)
}

func TestASGILifespan(t *testing.T) {
	h, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "asgi"})
	require.NoError(t, err)
	var events []string
	getJSON(t, h, "/events", &events)
	assert.Equal(t, []string{"lifespan.startup"}, events)
	require.NoError(t, h.Close())

	_, err = wsgi.New(wsgi.Options{Dir: "testdata", App: "asgi_lifespan:failing", Protocol: "asgi"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lifespan startup failed: no database")

	n, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_lifespan:no_lifespan", Protocol: "asgi"})
	assert.Equal(t, "no lifespan here", do(n, "GET", "/", nil).Body.String())
}

func TestASGIUnreadBodyKeepAlive(t *testing.T) {
	h, _ := asgiRaw(t)
	var errLog logBuffer
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(&errLog, "", 0)
	srv.Start()
	defer srv.Close()
	for _, size := range []int{10, 100 << 10, 1 << 20} {
		resp, err := http.Post(srv.URL+"/hello", "text/plain", strings.NewReader(strings.Repeat("x", size)))
		require.NoError(t, err)
		assert.Equal(t, "Hello, world!", string(readAll(t, resp.Body)))
		resp, err = http.Get(srv.URL + "/hello")
		require.NoError(t, err)
		assert.Equal(t, "Hello, world!", string(readAll(t, resp.Body)))
	}
	assert.NotContains(t, errLog.String(), "panic")
}
