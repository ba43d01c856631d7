package wsgi_test

// Integration tests against real ASGI frameworks (the Debian packages
// python3-starlette, python3-fastapi, python3-quart and python3-django's
// django.core.asgi), served natively on the app's event loop. Every app
// under testdata/{starletteapp,fastapiapp,quartapp,djangoasgi} implements
// the same routes (listed in testdata/starletteapp/app.py), so one
// black-box suite runs against each of them through a real HTTP server and
// client (and github.com/coder/websocket for WebSockets).
//
// Like frameworks_test.go, each app is loaded once per test binary
// (afwApp.handler) and shared by the tests; every test gets its own
// httptest.Server in front of it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// afwApp is one ASGI framework's test app and how it is mounted.
type afwApp struct {
	name string
	opts wsgi.Options
	// strip, if set, mounts the handler with http.StripPrefix(strip, h) in
	// an http.ServeMux that also has a Go route (/go/health).
	strip string
	// base is the URL path under which the client finds the app's routes:
	// strip followed by opts.Prefix.
	base string
	// isNotFound tells the framework's own 404 page from the library's
	// ("Not Found\n" for paths outside the app's prefix).
	isNotFound func(body string) bool
	// state is what GET /state answers: what the lifespan startup (or
	// the framework's equivalent) left for requests.
	state map[string]any
	// noWebSocket, if set, is why the app has no WebSocket route.
	noWebSocket string
	// release opens the gate that GET /gated?token= waits at.
	release func(t *testing.T, c *http.Client, base, token string)

	once sync.Once
	h    *wsgi.Handler
	err  error
	logs *logBuffer // every record of the app (Debug and up), as JSON lines
}

// afwReleaseByRequest opens a gate with GET /release?token=: the app's
// /gated awaits an asyncio.Event that this other request sets.
func afwReleaseByRequest(t *testing.T, c *http.Client, base, token string) {
	t.Helper()
	resp, body := afwGet(t, c, base+"/release?token="+url.QueryEscape(token))
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "released", string(body))
}

// afwReleaseDjango opens the gate of djsite's /gated (served over ASGI by
// djasgi.urls) with djsite's /release served over WSGI (fwDjango of
// frameworks_test.go): Django 3.2 iterates a streaming response
// synchronously on the event loop, so no request to the ASGI app could.
func afwReleaseDjango(t *testing.T, c *http.Client, _, token string) {
	t.Helper()
	srv := fwDjango.server(t, nil)
	afwReleaseByRequest(t, c, srv.URL+"/django", token)
}

var (
	afwStarlette = &afwApp{
		name: "starlette",
		opts: wsgi.Options{Dir: "testdata/starletteapp", App: "app:app", Protocol: "asgi", Prefix: "/star"},
		base: "/star",
		// PlainTextResponse("Not Found"), without the library's newline.
		isNotFound: func(body string) bool { return body == "Not Found" },
		state:      map[string]any{"started": "by lifespan", "startups": 1.0},
		release:    afwReleaseByRequest,
	}
	afwFastAPI = &afwApp{
		name:       "fastapi",
		opts:       wsgi.Options{Dir: "testdata/fastapiapp", App: "app:app", Protocol: "auto", Prefix: "/fast"},
		base:       "/fast",
		isNotFound: func(body string) bool { return body == `{"detail":"Not Found"}` },
		state:      map[string]any{"started": "by on_startup", "startups": 1.0},
		release:    afwReleaseByRequest,
	}
	afwQuart = &afwApp{
		name:       "quart",
		opts:       wsgi.Options{Dir: "testdata/quartapp", App: "app:app", Protocol: "asgi", Prefix: "/quart"},
		base:       "/quart",
		isNotFound: func(body string) bool { return strings.Contains(body, "<title>404 Not Found</title>") },
		state:      map[string]any{"started": "by before_serving", "startups": 1.0},
		release:    afwReleaseByRequest,
	}
	// The same Django project as frameworks_test.go's djsite (found
	// through PythonPath), under http.StripPrefix next to a Go route.
	afwDjangoASGI = &afwApp{
		name: "djangoasgi",
		opts: wsgi.Options{
			Dir: "testdata/djangoasgi", App: "djasgi.asgi:application", Protocol: "asgi",
			PythonPath: []string{"testdata/djangoapp"},
		},
		strip: "/djasgi",
		base:  "/djasgi",
		isNotFound: func(body string) bool {
			return strings.Contains(body, "The requested resource was not found on this server.")
		},
		state:       map[string]any{"started": nil, "startups": 0.0},
		noWebSocket: "Django has no WebSocket support without Channels",
		release:     afwReleaseDjango,
	}
)

// afwStderr shows the apps' warnings and errors (with tracebacks) in the
// test output.
var afwStderr = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})

// handler loads the app on first use; later calls (and other tests) share
// that Handler.
func (fw *afwApp) handler(t *testing.T) *wsgi.Handler {
	t.Helper()
	skipWithoutFrameworks(t)
	fw.once.Do(func() {
		fw.logs = &logBuffer{}
		opts := fw.opts
		opts.Name = fw.name
		opts.Debug = true // tracebacks in 500 bodies show up in assertion messages
		opts.Logger = slog.New(slog.NewMultiHandler(afwStderr,
			slog.NewJSONHandler(fw.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		fw.h, fw.err = wsgi.New(opts)
	})
	require.NoErrorf(t, fw.err, "loading the %s app: %+v", fw.name, fw.err)
	return fw.h
}

// afwGoRoute is the Go handler mounted next to a StripPrefix-mounted app.
func afwGoRoute(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "go ok")
}

// server starts an HTTP server for the app.
func (fw *afwApp) server(t *testing.T) *httptest.Server {
	t.Helper()
	var h http.Handler = fw.handler(t)
	if fw.strip != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /go/health", afwGoRoute)
		mux.Handle(fw.strip+"/", http.StripPrefix(fw.strip, h))
		h = mux
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// afwClient returns a client with a cookie jar that does not follow
// redirects.
func afwClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Jar:       jar,
		Transport: tr,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// afwDo sends req and returns the response with its whole body.
func afwDo(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func afwGet(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	return afwDo(t, c, req)
}

func afwPost(t *testing.T, c *http.Client, u, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	return afwDo(t, c, req)
}

// afwJSON checks resp is a JSON response and decodes its body.
func afwJSON(t *testing.T, resp *http.Response, body []byte) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"),
		"Content-Type %q", resp.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), "body: %s", body)
	return m
}

// afwWebSocketURL is the ws:// URL of path on srv.
func afwWebSocketURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

// afwRunSuite runs the checks every ASGI framework app must pass.
func afwRunSuite(t *testing.T, fw *afwApp) {
	fw.handler(t)

	t.Run("PathParameter", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		for _, name := range []string{"world", "Jürgen", "a b", "100%", "日本語"} {
			t.Run(name, func(t *testing.T) {
				resp, body := afwGet(t, c, srv.URL+fw.base+"/hello/"+url.PathEscape(name))
				require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
				assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"),
					"Content-Type %q", resp.Header.Get("Content-Type"))
				assert.Equal(t, "Hello, "+name+"!", string(body))
			})
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		for _, path := range []string{"/no/such/page", "/hello", "/hello/a/b"} {
			t.Run(path, func(t *testing.T) {
				resp, body := afwGet(t, c, srv.URL+fw.base+path)
				assert.Equal(t, http.StatusNotFound, resp.StatusCode)
				assert.True(t, fw.isNotFound(string(body)), "not the framework's 404 page: %q", body)
			})
		}
	})

	t.Run("JSON", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		in := `{"numbers": [1, 2, 39], "label": "ünïcödé ✓"}`
		resp, body := afwPost(t, c, srv.URL+fw.base+"/json", "application/json", strings.NewReader(in))
		got := afwJSON(t, resp, body)
		assert.Equal(t, map[string]any{"sum": 42.0, "count": 3.0, "label": "ünïcödé ✓"}, got)
	})

	t.Run("FormPost", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		form := url.Values{"name": {"Zoë & co = 1+1"}, "color": {"red", "vert clair", "青"}}
		resp, body := afwPost(t, c, srv.URL+fw.base+"/form", "application/x-www-form-urlencoded",
			strings.NewReader(form.Encode()))
		got := afwJSON(t, resp, body)
		assert.Equal(t, map[string]any{"name": "Zoë & co = 1+1", "colors": []any{"red", "vert clair", "青"}}, got)
	})

	t.Run("Cookies", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		resp, body := afwGet(t, c, srv.URL+fw.base+"/cookies/set")
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		setCookies := resp.Header.Values("Set-Cookie")
		require.Len(t, setCookies, 2, "Set-Cookie headers: %q", setCookies)
		cookies := map[string]*http.Cookie{}
		for _, ck := range resp.Cookies() {
			cookies[ck.Name] = ck
		}
		require.Contains(t, cookies, "flavor")
		require.Contains(t, cookies, "size")
		assert.Equal(t, "chocolate", cookies["flavor"].Value)
		assert.Equal(t, "large", cookies["size"].Value)
		assert.True(t, cookies["size"].HttpOnly, "size: %q", cookies["size"].Raw)
		assert.False(t, cookies["flavor"].HttpOnly, "flavor: %q", cookies["flavor"].Raw)

		// The jar sends both back.
		resp, body = afwGet(t, c, srv.URL+fw.base+"/cookies/read")
		got := afwJSON(t, resp, body)
		assert.Equal(t, map[string]any{"flavor": "chocolate", "size": "large"}, got)
	})

	t.Run("Redirect", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		resp, body := afwGet(t, c, srv.URL+fw.base+"/redirect")
		require.Contains(t, []int{http.StatusFound, http.StatusTemporaryRedirect}, resp.StatusCode, "body: %s", body)
		loc, err := resp.Location()
		require.NoError(t, err, "Location %q", resp.Header.Get("Location"))
		assert.Equal(t, fw.base+"/hello/world", loc.Path, "Location %q", resp.Header.Get("Location"))
		if loc.Host != "" {
			assert.Equal(t, strings.TrimPrefix(srv.URL, "http://"), loc.Host)
		}
		resp, body = afwGet(t, c, loc.String())
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "Hello, world!", string(body))
	})

	t.Run("Streaming", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		const n = 8
		resp, err := c.Get(srv.URL + fw.base + fmt.Sprintf("/stream?n=%d", n))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		// No length known up front: the body is chunked.
		assert.Equal(t, int64(-1), resp.ContentLength)
		assert.Equal(t, []string{"chunked"}, resp.TransferEncoding)
		sc := bufio.NewScanner(resp.Body)
		i := 0
		for sc.Scan() {
			want := fmt.Sprintf("chunk %d: %s", i, strings.Repeat(string(rune('a'+i%26)), 1000))
			require.Equal(t, want, sc.Text(), "line %d", i)
			i++
		}
		require.NoError(t, sc.Err())
		assert.Equal(t, n, i, "chunks received")
	})

	// The first chunk reaches the client while the app still runs: the
	// app waits after "first" until the client, having received it,
	// opens the gate (5 s at most, then it sends "timeout").
	t.Run("StreamingIsIncremental", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		token := fmt.Sprintf("%s-%d", fw.name, time.Now().UnixNano())
		resp, err := c.Get(srv.URL + fw.base + "/gated?token=" + token)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)

		br := bufio.NewReader(resp.Body)
		first := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			first <- line
		}()
		select {
		case line := <-first:
			require.Equal(t, "first\n", line)
		case <-time.After(3 * time.Second):
			require.FailNow(t, "the first chunk did not arrive while the app was waiting")
		}
		fw.release(t, c, srv.URL+fw.base, token)
		rest, err := io.ReadAll(br)
		require.NoError(t, err)
		assert.Equal(t, "second\n", string(rest))
	})

	t.Run("LargeUpload", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		data := make([]byte, 3<<20+5)
		r := rand.New(rand.NewPCG(3, 4))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		sum := sha256.Sum256(data)
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprint("chunked=", chunked), func(t *testing.T) {
				var body io.Reader = bytes.NewReader(data)
				if chunked {
					body = io.MultiReader(body) // hides the length
				}
				resp, out := afwPost(t, c, srv.URL+fw.base+"/upload", "application/octet-stream", body)
				got := afwJSON(t, resp, out)
				assert.Equal(t, hex.EncodeToString(sum[:]), got["sha256"])
				assert.Equal(t, float64(len(data)), got["size"])
				assert.Greater(t, got["chunks"], 1.0, "the app read the body in chunks")
			})
		}
	})

	t.Run("Lifespan", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		resp, body := afwGet(t, c, srv.URL+fw.base+"/state")
		assert.Equal(t, fw.state, afwJSON(t, resp, body))
	})

	// 20 requests that each await asyncio.sleep(0.2) run side by side on
	// the event loop: far less than 20 × 0.2 s in all.
	t.Run("Concurrent", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		const n = 20
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := time.Now()
		for i := range n {
			wg.Go(func() {
				resp, err := c.Get(srv.URL + fw.base + "/sleep")
				if err != nil {
					errs[i] = err
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				switch {
				case err != nil:
					errs[i] = err
				case resp.StatusCode != http.StatusOK || string(body) != "slept":
					errs[i] = fmt.Errorf("request %d: %s %q", i, resp.Status, body)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		for _, err := range errs {
			assert.NoError(t, err)
		}
		assert.Less(t, elapsed, 2*time.Second, "%d requests sleeping 0.2 s each did not run concurrently", n)
	})

	t.Run("URLGeneration", func(t *testing.T) {
		srv := fw.server(t)
		c := afwClient(t)
		resp, body := afwGet(t, c, srv.URL+fw.base+"/urls")
		assert.Equal(t, map[string]any{
			"hello":    fw.base + "/hello/world",
			"external": srv.URL + fw.base + "/hello/world",
		}, afwJSON(t, resp, body))
	})

	t.Run("WebSocket", func(t *testing.T) {
		if fw.noWebSocket != "" {
			t.Skip(fw.noWebSocket)
		}
		srv := fw.server(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, afwWebSocketURL(srv, fw.base+"/ws"),
			&websocket.DialOptions{Subprotocols: []string{"chat.v2", "chat.v1"}})
		require.NoError(t, err)
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		assert.Equal(t, "chat.v1", ws.Subprotocol(), "the subprotocol the app chose")

		messages := []struct {
			typ       websocket.MessageType
			send, got string
		}{
			{websocket.MessageText, "héllo", "echo: héllo"},
			{websocket.MessageBinary, "\x01\x02\x03\xff", "\xff\x03\x02\x01"},
			{websocket.MessageText, "", "echo: "},
			{websocket.MessageText, strings.Repeat("x", 100<<10), "echo: " + strings.Repeat("x", 100<<10)},
		}
		for _, m := range messages {
			require.NoError(t, ws.Write(ctx, m.typ, []byte(m.send)))
			typ, data, err := ws.Read(ctx)
			require.NoError(t, err)
			assert.Equal(t, m.typ, typ)
			assert.True(t, m.got == string(data), "echo of %.20q: %.40q", m.send, data)
		}

		// The app closes with its own code and reason.
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("close")))
		_, _, err = ws.Read(ctx)
		require.Error(t, err)
		assert.Equal(t, websocket.StatusCode(4001), websocket.CloseStatus(err), "close: %v", err)
		assert.Contains(t, err.Error(), "bye")
	})
}

func TestStarlette(t *testing.T)  { afwRunSuite(t, afwStarlette) }
func TestFastAPI(t *testing.T)    { afwRunSuite(t, afwFastAPI) }
func TestQuart(t *testing.T)      { afwRunSuite(t, afwQuart) }
func TestDjangoASGI(t *testing.T) { afwRunSuite(t, afwDjangoASGI) }

// TestStarletteFastAPIQuartOutsidePrefix checks that paths outside an app's
// Prefix get the library's 404 without reaching the app.
func TestStarletteFastAPIQuartOutsidePrefix(t *testing.T) {
	skipWithoutFrameworks(t)
	for _, fw := range []*afwApp{afwStarlette, afwFastAPI, afwQuart} {
		t.Run(fw.name, func(t *testing.T) {
			srv := fw.server(t)
			c := afwClient(t)
			for _, path := range []string{"/elsewhere/hello/world", "/hello/world", fw.base + "x/hello/world"} {
				resp, body := afwGet(t, c, srv.URL+path)
				assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s: %s", path, body)
				assert.Equal(t, "Not Found\n", string(body), "%s reached the app", path)
			}
		})
	}
}

// TestDjangoASGIStripPrefixMux serves Django over ASGI under
// http.StripPrefix in a ServeMux next to a Go route.
func TestDjangoASGIStripPrefixMux(t *testing.T) {
	srv := afwDjangoASGI.server(t)
	c := afwClient(t)
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/go/health", http.StatusOK, "go ok"},
		{"/djasgi/hello/mux", http.StatusOK, "Hello, mux!"},
		{"/hello/mux", http.StatusNotFound, "404 page not found\n"}, // the mux's, not Django's
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := afwGet(t, c, srv.URL+tt.path)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, tt.body, string(body))
		})
	}
}

// TestDjangoASGINoLifespan checks that Django, which raises on the
// lifespan scope, is served without lifespan (and says so at Debug level).
func TestDjangoASGINoLifespan(t *testing.T) {
	srv := afwDjangoASGI.server(t)
	c := afwClient(t)
	resp, body := afwGet(t, c, srv.URL+"/djasgi/hello/lifespan")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "Hello, lifespan!", string(body))
	logs := afwDjangoASGI.logs.String()
	assert.Contains(t, logs, "does not support lifespan")
	assert.Contains(t, logs, "Django can only handle ASGI/HTTP connections, not lifespan.")
}

// TestDjangoASGIAndWSGI serves one Django project (djsite.settings) over
// WSGI and ASGI at once: each keeps its URLconf.
func TestDjangoASGIAndWSGI(t *testing.T) {
	wsgiSrv := fwDjango.server(t, nil)
	asgiSrv := afwDjangoASGI.server(t)
	c := afwClient(t)
	tests := []struct {
		url    string
		status int
		body   string
	}{
		{wsgiSrv.URL + "/django/hello/wsgi", http.StatusOK, "Hello, wsgi!"},
		{asgiSrv.URL + "/djasgi/hello/asgi", http.StatusOK, "Hello, asgi!"},
		{asgiSrv.URL + "/djasgi/sleep", http.StatusOK, "slept"},   // djasgi.urls only
		{wsgiSrv.URL + "/django/sleep", http.StatusNotFound, ""},  // not in djsite.urls
		{asgiSrv.URL + "/djasgi/whoami", http.StatusNotFound, ""}, // djsite.urls only
		{wsgiSrv.URL + "/django/urls", http.StatusOK, `"/django/hello/world"`},
		{asgiSrv.URL + "/djasgi/urls", http.StatusOK, `"/djasgi/hello/world"`},
	}
	for _, tt := range tests {
		resp, body := afwGet(t, c, tt.url)
		assert.Equal(t, tt.status, resp.StatusCode, "%s: %s", tt.url, body)
		if tt.status == http.StatusOK {
			assert.Contains(t, string(body), tt.body, tt.url)
		}
	}
}

// TestQuartUnderMount mounts Quart (Prefix "/quart") under
// http.StripPrefix("/outer") too, so that root_path is "/outer/quart".
// Quart 0.18 expects scope["path"] to include root_path, as the ASGI spec
// has it (its WSGI compatibility section: PATH_INFO is path with root_path
// stripped) and Hypercorn does: its router binds to
// request.path.split(root_path, 1)[1] and answers 404 when path does not
// contain root_path.
func TestQuartUnderMount(t *testing.T) {
	h := afwQuart.handler(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /go/health", afwGoRoute)
	mux.Handle("/outer/", http.StripPrefix("/outer", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := afwClient(t)

	resp, body := afwGet(t, c, srv.URL+"/go/health")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "go ok", string(body))

	resp, body = afwGet(t, c, srv.URL+"/outer/quart/hello/world")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "Hello, world!", string(body))

	resp, body = afwGet(t, c, srv.URL+"/outer/quart/redirect")
	assert.Equal(t, http.StatusFound, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "/outer/quart/hello/world", resp.Header.Get("Location"))

	resp, body = afwGet(t, c, srv.URL+"/outer/quart/urls")
	if assert.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body) {
		assert.Equal(t, map[string]any{
			"hello":    "/outer/quart/hello/world",
			"external": srv.URL + "/outer/quart/hello/world",
		}, afwJSON(t, resp, body))
	}

	// WebSockets get the same scope paths.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, afwWebSocketURL(srv, "/outer/quart/ws"), nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("mounted")))
	_, data, err := ws.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "echo: mounted", string(data))
}

// TestStarletteLogging checks that a Python logging record emitted by an
// ASGI app while it serves a request reaches that app's Options.Logger
// when more than one app is loaded (as the WSGI apps' records do).
func TestStarletteLogging(t *testing.T) {
	afwFastAPI.handler(t) // a second app in the process
	srv := afwStarlette.server(t)
	c := afwClient(t)
	msg := fmt.Sprintf("starlette-log-%d", time.Now().UnixNano())
	resp, body := afwGet(t, c, srv.URL+"/star/log?msg="+msg)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	assert.True(t, waitFor(time.Second, func() bool { return strings.Contains(afwStarlette.logs.String(), msg) }),
		"the record %q did not reach the Starlette app's Logger", msg)
}

// TestStarletteGoFunctions calls a Go function (gohost) from an ASGI
// app's request. Func's documentation: "ctx is the request's context when
// the call happens during a request"; the call must reach the calling
// app's Options.Functions even when another loaded app has Go functions.
func TestStarletteGoFunctions(t *testing.T) {
	skipWithoutFrameworks(t)
	ctxs := make(chan context.Context, 1)
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata/starletteapp", App: "gohost_app:app", Protocol: "asgi",
		Functions: map[string]wsgi.Func{"whoami": func(ctx context.Context, _ []any) (any, error) {
			select {
			case ctxs <- ctx:
			default:
			}
			return "starlette", nil
		}}})
	srv := serve(t, h)
	c := afwClient(t)

	t.Run("OneAppWithFunctions", func(t *testing.T) {
		resp, body := afwGet(t, c, srv.URL+"/call")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "starlette", string(body))
		select {
		case ctx := <-ctxs:
			assert.NotNil(t, ctx.Done(), "the Func got context.Background(), not the request's context")
		default:
			assert.Fail(t, "the Go function was not called")
		}
	})

	t.Run("TwoAppsWithFunctions", func(t *testing.T) {
		newHandler(t, wsgi.Options{Dir: "testdata", App: "hello", Functions: map[string]wsgi.Func{
			"whoami": func(context.Context, []any) (any, error) { return "the other app", nil },
		}})
		resp, body := afwGet(t, c, srv.URL+"/call")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "starlette", string(body))
	})
}
