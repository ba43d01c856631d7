package wsgi_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

func behave(t *testing.T, opts ...func(*wsgi.Options)) (*wsgi.Handler, *logBuffer) {
	o := wsgi.Options{Dir: "testdata", App: "behave"}
	for _, f := range opts {
		f(&o)
	}
	return newHandler(t, o)
}

func TestHello(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", Module: "hello"})
	rec := do(h, "GET", "/", nil)
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, "Hello, world!", rec.Body.String())
	assert.Equal(t, "13", rec.Header().Get("Content-Length"))
	assert.Equal(t, "text/plain", rec.Header().Get("Content-Type"))
}

func TestEnviron(t *testing.T) {
	h, _ := behave(t)
	var env map[string]any
	r := "/environ/caf%C3%A9%2Fx?a=%20b&c"
	getJSON(t, h, r, &env)
	assert.Equal(t, "GET", env["REQUEST_METHOD"])
	assert.Equal(t, "", env["SCRIPT_NAME"])
	assert.Equal(t, "/environ/caf\u00c3\u00a9/x", env["PATH_INFO"], "latin-1 str of the decoded bytes")
	assert.Equal(t, hex.EncodeToString([]byte("/environ/café/x")), env["PATH_INFO_BYTES"])
	assert.Equal(t, "a=%20b&c", env["QUERY_STRING"])
	assert.Equal(t, r, env["REQUEST_URI"])
	assert.Equal(t, "example.com", env["SERVER_NAME"])
	assert.Equal(t, "80", env["SERVER_PORT"])
	assert.Equal(t, "HTTP/1.1", env["SERVER_PROTOCOL"])
	assert.Equal(t, "192.0.2.1", env["REMOTE_ADDR"])
	assert.Equal(t, "1234", env["REMOTE_PORT"])
	assert.Equal(t, "example.com", env["HTTP_HOST"])
	assert.Equal(t, []any{1.0, 0.0}, env["wsgi.version"])
	assert.Equal(t, "http", env["wsgi.url_scheme"])
	assert.Equal(t, true, env["wsgi.multithread"])
	assert.Equal(t, false, env["wsgi.multiprocess"])
	assert.Equal(t, false, env["wsgi.run_once"])
	assert.Equal(t, true, env["wsgi.input_terminated"])
	assert.Equal(t, "<Input>", env["wsgi.input"])
	assert.Equal(t, "<Errors>", env["wsgi.errors"])
	assert.Equal(t, "<type>", env["wsgi.file_wrapper"])
	assert.NotContains(t, env, "HTTPS")
	assert.NotContains(t, env, "CONTENT_LENGTH")
}

func TestEnvironHeadersAndContext(t *testing.T) {
	h, _ := behave(t, func(o *wsgi.Options) { o.Env = map[string]string{"APP_MODE": "test", "REMOTE_USER": "static"} })
	auth := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := wsgi.WithEnviron(r.Context(), map[string]string{"REMOTE_USER": "alice", "AUTH_TYPE": "Bearer"})
		h.ServeHTTP(w, r.WithContext(ctx))
	})
	r := newRequest("POST", "/environ", "a=1")
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Add("Accept", "text/html")
	r.Header.Add("Accept", "application/json")
	r.Header.Add("Cookie", "a=1")
	r.Header.Add("Cookie", "b=2")
	r.Header["X_Forwarded_For"] = []string{"127.0.0.1"}
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	r.Header["Content_Length"] = []string{"99"}
	r.Header.Set("Proxy", "http://evil")
	r.Header.Set("X-Latin", "caf\xe9")
	rec := record(auth, r)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	env := decode(t, rec.Body.Bytes())
	assert.Equal(t, "application/x-www-form-urlencoded", env["CONTENT_TYPE"])
	assert.Equal(t, "3", env["CONTENT_LENGTH"])
	assert.Equal(t, "text/html, application/json", env["HTTP_ACCEPT"])
	assert.Equal(t, "a=1; b=2", env["HTTP_COOKIE"])
	assert.Equal(t, "1.2.3.4", env["HTTP_X_FORWARDED_FOR"])
	assert.Equal(t, "caf\u00e9", env["HTTP_X_LATIN"])
	assert.NotContains(t, env, "HTTP_PROXY")
	assert.NotContains(t, env, "HTTP_CONTENT_LENGTH")
	assert.NotContains(t, env, "HTTP_CONTENT_TYPE")
	assert.Equal(t, "alice", env["REMOTE_USER"], "context wins over Env")
	assert.Equal(t, "Bearer", env["AUTH_TYPE"])
	assert.Equal(t, "test", env["APP_MODE"])
}

func TestEnvironTLS(t *testing.T) {
	h, _ := behave(t)
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/environ")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	env := decode(t, body)
	assert.Equal(t, "on", env["HTTPS"])
	assert.Equal(t, "https", env["wsgi.url_scheme"])
	assert.Equal(t, "127.0.0.1", env["SERVER_NAME"])
	assert.Equal(t, strings.Split(srv.Listener.Addr().String(), ":")[1], env["SERVER_PORT"])
}

func TestMounting(t *testing.T) {
	prefixed, _ := behave(t, func(o *wsgi.Options) { o.Prefix = "/shop/" })
	plain, _ := behave(t)
	mux := http.NewServeMux()
	mux.Handle("/py/", http.StripPrefix("/py", plain))
	mux.Handle("/shop/", prefixed)
	mux.HandleFunc("/go", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "from go") })

	tests := []struct {
		target, script, path string
		status               int
	}{
		{"/shop/environ/a%20b", "/shop", "/environ/a b", 200},
		{"/py/environ/x", "/py", "/environ/x", 200},
		{"/py/environ/%2F", "/py", "/environ//", 200},
		{"/shopping/environ", "", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := do(mux, "GET", tt.target, nil)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.status != 200 {
				return
			}
			env := decode(t, rec.Body.Bytes())
			assert.Equal(t, tt.script, env["SCRIPT_NAME"])
			assert.Equal(t, tt.path, env["PATH_INFO"])
		})
	}
	assert.Equal(t, "from go", do(mux, "GET", "/go", nil).Body.String())
}

func TestPathRefused(t *testing.T) {
	h, _ := behave(t)
	assert.Equal(t, 400, do(h, "GET", "/environ/a%00b", nil).Code)
}

// splitReader hands out the body in reads of the given sizes, in turn.
type splitReader struct {
	data  []byte
	sizes []int
	i     int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(s.data), s.sizes[s.i%len(s.sizes)])
	s.i++
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func TestInputMatchesBytesIO(t *testing.T) {
	h, _ := behave(t)
	rnd := rand.New(rand.NewSource(1))
	big := make([]byte, 70000)
	for i := range big {
		big[i] = "ab\n\x00\xff"[rnd.Intn(5)]
	}
	bodies := map[string][]byte{
		"empty":      nil,
		"one":        []byte("a"),
		"lines":      []byte("line one\nline two\n\nlast"),
		"newlines":   []byte("\n\n\n"),
		"no-newline": []byte(strings.Repeat("x", 9000)),
		"binary":     big,
	}
	ops := []string{
		"read",
		"read:-1",
		"read:None",
		"read:0,read:1,read:3,read:1099511627776,read:5",
		"readline,readline,readline,readline,readline",
		"readline:0,readline:1,readline:2,readline:5000,readline:-1,read",
		"readlines",
		"readlines:1",
		"readlines:10,readlines:-1",
		"iter",
		"readline:3,iter",
		"read:4,readlines:100,read",
	}
	splits := map[string][]int{"whole": {1 << 30}, "bytes": {1}, "odd": {3, 7, 4095, 1}}
	for bname, body := range bodies {
		for _, op := range ops {
			for sname, sizes := range splits {
				for _, chunked := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/%s/chunked=%v", bname, op, sname, chunked)
					t.Run(name, func(t *testing.T) {
						r := newRequest("POST", "/input-compare?ops="+op, "")
						r.Body = io.NopCloser(&splitReader{data: body, sizes: sizes})
						r.ContentLength = int64(len(body))
						if chunked {
							r.ContentLength = -1
						}
						r.Header.Set("X-Body", hex.EncodeToString(body))
						rec := record(h, r)
						require.Equal(t, 200, rec.Code, rec.Body.String())
						assert.Equal(t, `"match"`, rec.Body.String())
					})
				}
			}
		}
	}
}

func TestUpload(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	data := make([]byte, 4<<20+17)
	rand.New(rand.NewSource(2)).Read(data)
	sum := sha256.Sum256(data)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			var body io.Reader = strings.NewReader(string(data))
			if chunked {
				body = io.MultiReader(body) // hides the length: the client sends chunks
			}
			resp, err := http.Post(srv.URL+"/upload", "application/octet-stream", body)
			require.NoError(t, err)
			defer resp.Body.Close()
			got := decode(t, readAll(t, resp.Body))
			assert.Equal(t, hex.EncodeToString(sum[:]), got["sha256"])
			assert.Equal(t, float64(len(data)), got["bytes"])
		})
	}
}

func TestMaxBodyBytes(t *testing.T) {
	h, _ := behave(t, func(o *wsgi.Options) { o.MaxBodyBytes = 100 })
	rec := do(h, "POST", "/echo", strings.NewReader(strings.Repeat("x", 101)))
	assert.Equal(t, 413, rec.Code)

	r := newRequest("POST", "/read-error", "")
	r.Body = io.NopCloser(strings.NewReader(strings.Repeat("x", 500)))
	r.ContentLength = -1
	rec = record(h, r)
	assert.Equal(t, 200, rec.Code)
	assert.Contains(t, rec.Body.String(), "OSError: wsgi: request body larger than the 100-byte limit")

	assert.Equal(t, "xyz", do(h, "POST", "/echo", strings.NewReader("xyz")).Body.String())
}

func TestClientResetMidUpload(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "POST /read-error HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, conn.Close())
	// The app saw an OSError rather than a short body: its answer went
	// nowhere, but the handler must stay healthy.
	rec := do(h, "GET", "/closes", nil)
	assert.Equal(t, 200, rec.Code)
}

func TestExpectContinue(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	for _, tt := range []struct {
		path        string
		continue100 bool
	}{{"/echo", true}, {"/sleep?0", false}} {
		t.Run(tt.path, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", tt.path)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
			line, err := br.ReadString('\n')
			require.NoError(t, err)
			if tt.continue100 {
				assert.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
				_, _ = br.ReadString('\n')
				_, err = io.WriteString(conn, "hello")
				require.NoError(t, err)
				resp, err := http.ReadResponse(br, nil)
				require.NoError(t, err)
				assert.Equal(t, "hello", string(readAll(t, resp.Body)))
			} else {
				assert.Equal(t, "HTTP/1.1 200 OK\r\n", line, "no 100 Continue when the app never reads")
			}
		})
	}
}

func TestStreamingReachesClientAsYielded(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	resp, err := http.Get(srv.URL + "/gated")
	require.NoError(t, err)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "before gate\n", line)
	assert.Equal(t, 200, do(h, "GET", "/open-gate", nil).Code)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "after gate\n", string(rest))
	assert.Empty(t, resp.Header.Get("Content-Length"))
}

func TestStreamChunks(t *testing.T) {
	h, _ := behave(t)
	rec := do(h, "GET", "/stream?n=100", nil)
	require.Equal(t, 200, rec.Code)
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	require.Len(t, lines, 100)
	assert.Equal(t, "chunk 99", lines[99])
	// close() runs after the response is out: it may not have run yet.
	closes := map[string]float64{}
	assert.True(t, waitFor(2*time.Second, func() bool {
		getJSON(t, h, "/closes", &closes)
		return closes["stream"] == 1
	}), "close() calls: %v", closes)
}

func TestClientGoneMidStream(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	resp, err := http.Get(srv.URL + "/endless")
	require.NoError(t, err)
	buf := make([]byte, 1024)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	srv.CloseClientConnections()
	closed := waitFor(2*time.Second, func() bool {
		closes := map[string]float64{}
		getJSON(t, h, "/closes", &closes)
		return closes["endless"] == 1
	})
	assert.True(t, closed, "the generator's finally must run once the client left")
}

func TestWriteCallable(t *testing.T) {
	h, _ := behave(t)
	rec := do(h, "GET", "/write", nil)
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, "from write; then iterable", rec.Body.String())
	// close() runs after the response is out: it may not have run yet.
	closes := map[string]float64{}
	assert.True(t, waitFor(2*time.Second, func() bool {
		getJSON(t, h, "/closes", &closes)
		return closes["write"] == 1
	}), "close() calls: %v", closes)
}

func TestNoBody(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	head, err := http.Head(srv.URL + "/head")
	require.NoError(t, err)
	assert.Empty(t, readAll(t, head.Body))
	assert.Equal(t, 200, head.StatusCode)
	head, err = http.Head(srv.URL + "/tuple")
	require.NoError(t, err)
	assert.Empty(t, readAll(t, head.Body))
	assert.Equal(t, int64(5), head.ContentLength, "a list body's length is declared for HEAD as for GET")

	for _, status := range []string{"204 No Content", "304 Not Modified"} {
		resp, err := http.Get(srv.URL + "/status?" + strings.ReplaceAll(status, " ", "%20"))
		require.NoError(t, err)
		body := readAll(t, resp.Body)
		assert.Equal(t, status[:3], fmt.Sprint(resp.StatusCode))
		assert.Empty(t, body)
	}
	// close() runs after the response is out: it may not have run yet.
	closes := map[string]float64{}
	assert.True(t, waitFor(2*time.Second, func() bool {
		getJSON(t, h, "/closes", &closes)
		return closes["head"] == 1 && closes["status"] == 2
	}), "close() calls: %v", closes)
}

func TestResponseShapes(t *testing.T) {
	h, _ := behave(t)
	tests := []struct {
		path, body, length string
		status             int
	}{
		{"/tuple", "tuple", "5", 200},
		{"/empty", "", "0", 200},
		{"/big-list", strings.Repeat("a", 40000) + strings.Repeat("b", 40000), "80000", 200},
		{"/lazy-start", "late start", "", 201},
		{"/status?299%20Custom", "body", "", 299},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := do(h, "GET", tt.path, nil)
			assert.Equal(t, tt.status, rec.Code)
			assert.Equal(t, tt.body, rec.Body.String())
			assert.Equal(t, tt.length, rec.Header().Get("Content-Length"))
		})
	}
	rec := do(h, "GET", "/empty", nil)
	_, sniffed := rec.Header()["Content-Type"]
	assert.False(t, sniffed && rec.Header().Get("Content-Type") != "", "no Content-Type is sniffed")
	rec = do(h, "GET", "/cookies", nil)
	assert.Equal(t, []string{"a=1; Path=/", "b=2; Path=/"}, rec.Header().Values("Set-Cookie"))
}

func TestFileWrapper(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	data := make([]byte, 3<<20)
	rand.New(rand.NewSource(3)).Read(data)
	path := filepath.Join(t.TempDir(), "blob")
	require.NoError(t, os.WriteFile(path, data, 0o600))

	resp, err := http.Get(srv.URL + "/file?" + path)
	require.NoError(t, err)
	got := readAll(t, resp.Body)
	assert.Equal(t, fmt.Sprint(len(data)-3), resp.Header.Get("Content-Length"))
	assert.True(t, string(got) == string(data[3:]), "body is the file from where the file object stood")

	resp, err = http.Get(srv.URL + "/file-length?" + path)
	require.NoError(t, err)
	assert.Equal(t, data[:10], readAll(t, resp.Body), "the app's Content-Length caps the file")

	rec := do(h, "GET", "/bytesio-wrapper", nil)
	assert.Equal(t, strings.Repeat("not a real file ", 1000), rec.Body.String())
}

func TestThreadStatePerRequest(t *testing.T) {
	h, _ := behave(t, func(o *wsgi.Options) { o.Threads = 4 })
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := do(h, "GET", fmt.Sprintf("/threads?%d", i), nil)
			assert.Equal(t, "same same same ", rec.Body.String())
		}()
	}
	wg.Wait()
}

func TestErrorsStream(t *testing.T) {
	h, logs := behave(t, func(o *wsgi.Options) { o.Name = "tagged" })
	assert.Equal(t, 200, do(h, "GET", "/log", nil).Code)
	var lines []string
	for _, rec := range logs.records(t) {
		if rec["stream"] == "wsgi.errors" {
			lines = append(lines, rec["msg"].(string))
			assert.Equal(t, "tagged", rec["app"])
		}
	}
	assert.Equal(t, []string{"first line", "second line", "no newline at end"}, lines)
}

func TestObjectsUsedAfterRequestRaise(t *testing.T) {
	h, _ := behave(t)
	require.Equal(t, "kept", do(h, "GET", "/keep", nil).Body.String())
	var got map[string]string
	getJSON(t, h, "/use-kept", &got)
	for _, name := range []string{"start_response", "write", "input", "errors"} {
		assert.Contains(t, got[name], "ValueError: wsgi: ", name)
		assert.Contains(t, got[name], "used after the request ended", name)
	}
}

func TestQueueTimeout(t *testing.T) {
	h, logs := behave(t, func(o *wsgi.Options) {
		o.Threads = 1
		o.QueueTimeout = 50 * time.Millisecond
	})
	done := make(chan int)
	go func() { done <- do(h, "GET", "/sleep?0.5", nil).Code }()
	time.Sleep(100 * time.Millisecond)
	rec := do(h, "GET", "/environ", nil)
	assert.Equal(t, 503, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	assert.Equal(t, 200, <-done)
	assert.Contains(t, logs.String(), "no python thread free in time")
}

func TestClose(t *testing.T) {
	h, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "behave"})
	require.NoError(t, err)
	done := make(chan string)
	go func() { done <- do(h, "GET", "/sleep?0.3", nil).Body.String() }()
	time.Sleep(50 * time.Millisecond)
	closed := make(chan struct{})
	go func() {
		assert.NoError(t, h.Close())
		close(closed)
	}()
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, 503, do(h, "GET", "/environ", nil).Code, "new requests are refused while closing")
	select {
	case <-closed:
		t.Fatal("Close returned before the request in flight finished")
	default:
	}
	assert.Equal(t, "slept", <-done)
	<-closed
	assert.NoError(t, h.Close(), "Close is idempotent")
}

func TestAppsWithTheSameModuleName(t *testing.T) {
	one, _ := newHandler(t, wsgi.Options{Dir: "testdata/apps/one", App: "app"})
	two, _ := newHandler(t, wsgi.Options{Dir: "testdata/apps/two", App: "app"})
	assert.Equal(t, "one", do(one, "GET", "/", nil).Body.String())
	assert.Equal(t, "two", do(two, "GET", "/", nil).Body.String())
}

func TestDottedModuleAndCallable(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata/apps", Module: "pkg.web", Callable: "factory.app"})
	assert.Equal(t, "pkg helper", do(h, "GET", "/", nil).Body.String())
}

func TestSysExecutable(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "sysinfo"})
	info := map[string]string{}
	getJSON(t, h, "/", &info)
	assert.Equal(t, wsgi.PythonExecutable(), info["executable"])
	st, err := os.Stat(info["executable"])
	require.NoError(t, err, "sys.executable must exist")
	assert.False(t, st.IsDir())
	assert.Contains(t, info["executable"], "python"+info["version"])
	assert.NotEqual(t, "MainThread", info["thread"], "requests do not run on Python's main thread")
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		opts wsgi.Options
		want []string // substrings of %+v
	}{
		{"no app", wsgi.Options{Dir: "testdata"}, []string{"wsgi: no app"}},
		{"both", wsgi.Options{Dir: "testdata", App: "a:b", Module: "a"}, []string{"may not be combined"}},
		{"bad module name", wsgi.Options{Dir: "testdata", Module: "hello.py"}, []string{"hello.py"}},
		{"missing dir", wsgi.Options{Dir: "testdata/nope", App: "hello"}, []string{"wsgi: Dir"}},
		{"bad prefix", wsgi.Options{Dir: "testdata", App: "hello", Prefix: "shop"}, []string{"must start with /"}},
		{"missing module", wsgi.Options{Dir: "testdata", App: "nosuchmodule"}, []string{"ModuleNotFoundError", "nosuchmodule"}},
		{"syntax error", wsgi.Options{Dir: "testdata/broken", App: "syntax"}, []string{"SyntaxError", "Traceback", "syntax.py"}},
		{"import raises", wsgi.Options{Dir: "testdata/broken", App: "raises"}, []string{"RuntimeError: cannot start", "Traceback"}},
		{"missing callable", wsgi.Options{Dir: "testdata", App: "hello:nope"}, []string{"AttributeError", "has no callable 'nope'"}},
		{"not callable", wsgi.Options{Dir: "testdata/broken", App: "notcallable"}, []string{"TypeError", "not a callable"}},
		{"exits", wsgi.Options{Dir: "testdata/broken", App: "exits"}, []string{"SystemExit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := wsgi.New(tt.opts)
			require.Error(t, err)
			assert.Nil(t, h)
			for _, w := range tt.want {
				assert.Contains(t, fmt.Sprintf("%+v", err), w)
			}
		})
	}
	var pe *wsgi.PythonError
	_, err := wsgi.New(wsgi.Options{Dir: "testdata/broken", App: "raises"})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "RuntimeError", pe.Type)
	assert.Equal(t, "cannot start", pe.Message)
	assert.Equal(t, "RuntimeError: cannot start", fmt.Sprint(pe))
	assert.Contains(t, fmt.Sprintf("%+v", pe), "Traceback (most recent call last)")
}

// --- small helpers --------------------------------------------------------

func readAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

func TestRespondThenRead(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	data := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	sum := sha256.Sum256([]byte(data))
	resp, err := http.Post(srv.URL+"/respond-then-read", "text/plain", strings.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, "started\nread 1048576 bytes, sha256 "+hex.EncodeToString(sum[:]), string(readAll(t, resp.Body)))
}

func TestUnreadBody(t *testing.T) {
	h, _ := behave(t)
	srv := serve(t, h)
	for _, size := range []int{10, 100 << 10, 2 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/tuple", "text/plain", strings.NewReader(strings.Repeat("x", size)))
			require.NoError(t, err)
			assert.Equal(t, "tuple", string(readAll(t, resp.Body)), "the whole response arrives even when the body is left unread")
			resp, err = http.Get(srv.URL + "/tuple")
			require.NoError(t, err)
			assert.Equal(t, "tuple", string(readAll(t, resp.Body)))
		})
	}
}

func TestSysPathOrder(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	venv := filepath.Join(tmp, "venv")
	sp := filepath.Join(venv, "lib", "python"+pythonMinor(), "site-packages")
	for _, d := range []string{a, b, sp} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "syspath", PythonPath: []string{a, b}, Virtualenv: venv})
	var path []string
	getJSON(t, h, "/", &path)
	dir, _ := filepath.Abs("testdata")
	index := func(p string) int {
		for i, q := range path {
			if q == p {
				return i
			}
		}
		t.Fatalf("%s not on sys.path %v", p, path)
		return -1
	}
	assert.Less(t, index(dir), index(a))
	assert.Less(t, index(a), index(b))
	assert.Less(t, index(b), index(sp))
	for i, p := range path {
		if strings.Contains(p, "dist-packages") || strings.HasSuffix(p, "site-packages") && p != sp {
			assert.Greater(t, i, index(sp), "the virtualenv comes before the system's %s", p)
		}
	}
}

func pythonMinor() string {
	v, _, _ := strings.Cut(wsgi.PythonVersion(), " ")
	parts := strings.Split(v, ".")
	return parts[0] + "." + parts[1]
}

func TestQueueWaitEndedByContext(t *testing.T) {
	h, _ := behave(t, func(o *wsgi.Options) { o.Threads = 1 })
	done := make(chan int)
	go func() { done <- do(h, "GET", "/sleep?0.3", nil).Code }()
	time.Sleep(50 * time.Millisecond)
	r := newRequest("GET", "/tuple", "")
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Millisecond)
	defer cancel()
	rec := record(h, r.WithContext(ctx))
	assert.Equal(t, 503, rec.Code, "never an empty 200")
	assert.Equal(t, 200, <-done)
}
