package wsgi_test

// Integration tests against real Python web frameworks (the Debian packages
// python3-flask, python3-django, python3-falcon, python3-bottle and
// python3-pyramid). Every app under testdata/<framework>app implements the
// same routes (listed in testdata/flaskapp/app.py), so one black-box suite
// runs against each of them through a real HTTP server and client.
//
// The interpreter is process-wide and Django's settings are too, so each
// app is loaded once per test binary (fwApp.handler) and shared by the
// tests; every test gets its own httptest.Server in front of it.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gowsgi/wsgi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fwApp is one framework's test app and how it is mounted.
type fwApp struct {
	name string
	opts wsgi.Options
	// strip, if set, mounts the handler with http.StripPrefix(strip, h) in
	// an http.ServeMux that also has a Go route (/go/health).
	strip string
	// base is the URL path under which the client finds the app's routes:
	// strip followed by opts.Prefix.
	base string
	// notFound is a piece of the framework's own 404 page, which the
	// library's "path outside the app's prefix" 404 does not have.
	notFound string

	once sync.Once
	h    *wsgi.Handler
	err  error
}

var (
	fwFlask = &fwApp{
		name:     "flask",
		opts:     wsgi.Options{Dir: "testdata/flaskapp", App: "app:app", Prefix: "/flask"},
		base:     "/flask",
		notFound: "<title>404 Not Found</title>",
	}
	// A dotted module: djsite is a package under Dir, wsgi its module.
	fwDjango = &fwApp{
		name:     "django",
		opts:     wsgi.Options{Dir: "testdata/djangoapp", App: "djsite.wsgi:application", Prefix: "/django"},
		base:     "/django",
		notFound: "The requested resource was not found on this server.",
	}
	// Both kinds of mount at once: StripPrefix removes /outer, Prefix is
	// /falcon, so SCRIPT_NAME must be /outer/falcon.
	fwFalcon = &fwApp{
		name:     "falcon",
		opts:     wsgi.Options{Dir: "testdata/falconapp", App: "app:app", Prefix: "/falcon"},
		strip:    "/outer",
		base:     "/outer/falcon",
		notFound: `"title": "404 Not Found"`,
	}
	fwBottle = &fwApp{
		name:     "bottle",
		opts:     wsgi.Options{Dir: "testdata/bottleapp", App: "app:app", Prefix: "/bottle"},
		base:     "/bottle",
		notFound: "Error: 404 Not Found",
	}
	fwPyramid = &fwApp{
		name:     "pyramid",
		opts:     wsgi.Options{Dir: "testdata/pyramidapp", App: "app:app"},
		strip:    "/pyramid",
		base:     "/pyramid",
		notFound: "The resource could not be found.",
	}
)

// fwLogger shows the apps' warnings and errors (with tracebacks)
// in the test output.
var fwLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// handler loads the app on first use; later calls (and other tests) share
// that Handler.
func (fw *fwApp) handler(t *testing.T) *wsgi.Handler {
	t.Helper()
	skipWithoutFrameworks(t)
	fw.once.Do(func() {
		opts := fw.opts
		opts.Name = fw.name
		opts.Debug = true // tracebacks in 500 bodies show up in assertion messages
		opts.Logger = fwLogger
		fw.h, fw.err = wsgi.New(opts)
	})
	require.NoErrorf(t, fw.err, "loading the %s app: %+v", fw.name, fw.err)
	return fw.h
}

// fwGoRoute is the Go handler mounted next to a StripPrefix-mounted app.
func fwGoRoute(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "go ok")
}

// server starts an HTTP server for the app; middleware, if not nil, wraps
// the handler (inside StripPrefix).
func (fw *fwApp) server(t *testing.T, middleware func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	return fw.serverWith(t, middleware, nil)
}

// serverWith is server with a hook to configure the http.Server before it
// starts.
func (fw *fwApp) serverWith(t *testing.T, middleware func(http.Handler) http.Handler, configure func(*http.Server)) *httptest.Server {
	t.Helper()
	var h http.Handler = fw.handler(t)
	if middleware != nil {
		h = middleware(h)
	}
	if fw.strip != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /go/health", fwGoRoute)
		mux.Handle(fw.strip+"/", http.StripPrefix(fw.strip, h))
		h = mux
	}
	srv := httptest.NewUnstartedServer(h)
	if configure != nil {
		configure(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// fwLockedBuffer is a bytes.Buffer safe for concurrent use.
type fwLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *fwLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *fwLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fwClient returns a client with a cookie jar that does not follow
// redirects.
func fwClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// fwDo sends req and returns the response with its whole body.
func fwDo(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func fwGet(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	return fwDo(t, c, req)
}

func fwPost(t *testing.T, c *http.Client, u, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	return fwDo(t, c, req)
}

// fwDecodeJSON checks resp is a JSON response and decodes its body.
func fwDecodeJSON(t *testing.T, resp *http.Response, body []byte) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"),
		"Content-Type %q", resp.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), "body: %s", body)
	return m
}

// fwUploadPayload is ~300 KiB of bytes that are not UTF-8 and that contain
// what a multipart parser could trip on: NULs, CR LF, "--" and lines that
// look like a boundary.
func fwUploadPayload(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("\x00\xff\xfe\xc3\x28\xed\xa0\x80\r\n--\r\n--boundary\r\n\r\n\x80")
	for i := range 256 {
		b.WriteByte(byte(i))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for b.Len() < 300<<10 {
		if r.IntN(64) == 0 {
			b.WriteString("\r\n--")
		}
		b.WriteByte(byte(r.Uint32()))
	}
	b.WriteString("\r\n") // a trailing CR LF belongs to the file, not the delimiter
	data := b.Bytes()
	require.False(t, utf8.Valid(data))
	return data
}

// fwRunSuite runs the checks every framework app must pass.
func fwRunSuite(t *testing.T, fw *fwApp) {
	t.Run("PathParameter", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		for _, name := range []string{"world", "Jürgen", "a b", "100%", "日本語"} {
			t.Run(name, func(t *testing.T) {
				resp, body := fwGet(t, c, srv.URL+fw.base+"/hello/"+url.PathEscape(name))
				require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
				assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"),
					"Content-Type %q", resp.Header.Get("Content-Type"))
				assert.Equal(t, "Hello, "+name+"!", string(body))
			})
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		for _, path := range []string{"/no/such/page", "/hello", "/hello/a/b"} {
			t.Run(path, func(t *testing.T) {
				resp, body := fwGet(t, c, srv.URL+fw.base+path)
				assert.Equal(t, http.StatusNotFound, resp.StatusCode)
				assert.Contains(t, string(body), fw.notFound, "not the framework's 404 page")
			})
		}
	})

	t.Run("FormPost", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		form := url.Values{"name": {"Zoë & co = 1+1"}, "color": {"red", "vert clair", "青"}}
		resp, body := fwPost(t, c, srv.URL+fw.base+"/form", "application/x-www-form-urlencoded", []byte(form.Encode()))
		got := fwDecodeJSON(t, resp, body)
		assert.Equal(t, map[string]any{
			"name":   "Zoë & co = 1+1",
			"colors": []any{"red", "vert clair", "青"},
		}, got)
	})

	t.Run("JSON", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		in := `{"numbers": [1, 2, 39], "label": "ünïcödé ✓"}`
		resp, body := fwPost(t, c, srv.URL+fw.base+"/json", "application/json", []byte(in))
		got := fwDecodeJSON(t, resp, body)
		assert.Equal(t, map[string]any{"sum": 42.0, "count": 3.0, "label": "ünïcödé ✓"}, got)
	})

	t.Run("Cookies", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		resp, body := fwGet(t, c, srv.URL+fw.base+"/cookies/set")
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

		// The jar sends both back in one Cookie header.
		resp, body = fwGet(t, c, srv.URL+fw.base+"/cookies/read")
		got := fwDecodeJSON(t, resp, body)
		assert.Equal(t, map[string]any{"flavor": "chocolate", "size": "large"}, got)

		// Two Cookie header lines (as HTTP/2 allows) read as one.
		req, err := http.NewRequest(http.MethodGet, srv.URL+fw.base+"/cookies/read", nil)
		require.NoError(t, err)
		req.Header.Add("Cookie", "flavor=vanilla")
		req.Header.Add("Cookie", "size=small")
		resp, body = fwDo(t, &http.Client{Timeout: 10 * time.Second}, req)
		got = fwDecodeJSON(t, resp, body)
		assert.Equal(t, map[string]any{"flavor": "vanilla", "size": "small"}, got)
	})

	t.Run("Redirect", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		resp, body := fwGet(t, c, srv.URL+fw.base+"/redirect")
		require.Equal(t, http.StatusFound, resp.StatusCode, "body: %s", body)
		loc, err := resp.Location()
		require.NoError(t, err, "Location %q", resp.Header.Get("Location"))
		assert.Equal(t, fw.base+"/hello/world", loc.Path, "Location %q", resp.Header.Get("Location"))
		if loc.Host != "" {
			assert.Equal(t, strings.TrimPrefix(srv.URL, "http://"), loc.Host)
		}

		resp, body = fwGet(t, c, loc.String())
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "Hello, world!", string(body))
	})

	t.Run("MultipartUpload", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		data := fwUploadPayload(t)
		sum := sha256.Sum256(data)

		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("note", "naïve upload"))
		hdr := make(textproto.MIMEHeader)
		hdr.Set("Content-Disposition", `form-data; name="file"; filename="blob.bin"`)
		hdr.Set("Content-Type", "application/octet-stream")
		part, err := mw.CreatePart(hdr)
		require.NoError(t, err)
		_, err = part.Write(data)
		require.NoError(t, err)
		require.NoError(t, mw.Close())

		resp, body := fwPost(t, c, srv.URL+fw.base+"/upload", mw.FormDataContentType(), buf.Bytes())
		got := fwDecodeJSON(t, resp, body)
		assert.Equal(t, map[string]any{
			"sha256":   hex.EncodeToString(sum[:]),
			"size":     float64(len(data)),
			"filename": "blob.bin",
			"note":     "naïve upload",
		}, got)
	})

	t.Run("Streaming", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		const n = 8
		resp, err := c.Get(srv.URL + fw.base + fmt.Sprintf("/stream?n=%d", n))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		// A generator body has no length known up front: it is chunked.
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

	// Each chunk reaches the client when the app yields it: the app waits
	// after "first" until the client, having received it, calls /release.
	t.Run("StreamingIsIncremental", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
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

		relResp, relBody := fwGet(t, c, srv.URL+fw.base+"/release?token="+token)
		require.Equal(t, http.StatusOK, relResp.StatusCode, "body: %s", relBody)
		rest, err := io.ReadAll(br)
		require.NoError(t, err)
		assert.Equal(t, "second\n", string(rest))
	})

	t.Run("URLGeneration", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		resp, body := fwGet(t, c, srv.URL+fw.base+"/urls")
		got := fwDecodeJSON(t, resp, body)
		assert.Equal(t, map[string]any{
			"hello":    fw.base + "/hello/world",
			"external": srv.URL + fw.base + "/hello/world",
		}, got)
	})

	t.Run("EnvironFromMiddleware", func(t *testing.T) {
		auth := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := wsgi.WithEnviron(r.Context(), map[string]string{"REMOTE_USER": "alice", "X_TENANT": "acme"})
				next.ServeHTTP(w, r.WithContext(ctx))
			})
		}
		srv := fw.server(t, auth)
		c := fwClient(t)
		resp, body := fwGet(t, c, srv.URL+fw.base+"/whoami")
		got := fwDecodeJSON(t, resp, body)
		assert.Equal(t, map[string]any{"user": "alice", "tenant": "acme", "script_name": fw.base}, got)
	})

	// A framework that refuses a request (405, 403, 404) does not read its
	// small body. The connection must stay usable for the next request, and
	// the server must not panic. (The library enables full duplex when the
	// app answers before reading the body; net/http then drains the body
	// after the handler returns and its next read panics with "invalid
	// concurrent Body.Read call", golang/go#68560, dropping the connection.)
	t.Run("UnreadBodyKeepAlive", func(t *testing.T) {
		var errLog fwLockedBuffer
		var conns atomic.Int32
		srv := fw.serverWith(t, nil, func(s *http.Server) {
			s.ErrorLog = log.New(&errLog, "", 0)
			s.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
		})
		c := fwClient(t)

		// /hello/{name} answers GET only.
		resp, body := fwPost(t, c, srv.URL+fw.base+"/hello/world", "application/x-www-form-urlencoded", []byte("a=1&b=2"))
		require.Contains(t, []int{http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed}, resp.StatusCode,
			"body: %s", body)

		resp, body = fwGet(t, c, srv.URL+fw.base+"/hello/again")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "Hello, again!", string(body))
		assert.NotContains(t, errLog.String(), "panic", "http.Server error log")
		assert.Equal(t, int32(1), conns.Load(), "connections opened for two requests on a keep-alive client")
	})

	t.Run("Concurrent", func(t *testing.T) {
		srv := fw.server(t, nil)
		c := fwClient(t)
		const n = 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				resp, err := c.Get(fmt.Sprintf("%s%s/hello/user%d", srv.URL, fw.base, i))
				if err != nil {
					errs[i] = err
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				switch {
				case err != nil:
					errs[i] = err
				case resp.StatusCode != http.StatusOK || string(body) != fmt.Sprintf("Hello, user%d!", i):
					errs[i] = fmt.Errorf("request %d: %s %q", i, resp.Status, body)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			assert.NoError(t, err)
		}
	})
}

func TestFlask(t *testing.T)   { fwRunSuite(t, fwFlask) }
func TestDjango(t *testing.T)  { fwRunSuite(t, fwDjango) }
func TestFalcon(t *testing.T)  { fwRunSuite(t, fwFalcon) }
func TestBottle(t *testing.T)  { fwRunSuite(t, fwBottle) }
func TestPyramid(t *testing.T) { fwRunSuite(t, fwPyramid) }

// TestFlaskDjangoFalconBottleOutsidePrefix checks that paths outside an
// app's Prefix get the library's 404 without reaching the app.
func TestFlaskDjangoFalconBottleOutsidePrefix(t *testing.T) {
	for _, fw := range []*fwApp{fwFlask, fwDjango, fwFalcon, fwBottle} {
		t.Run(fw.name, func(t *testing.T) {
			srv := fw.server(t, nil)
			c := fwClient(t)
			outside := strings.TrimSuffix(fw.base, fw.opts.Prefix) + "/elsewhere/hello/world"
			for _, path := range []string{outside, fw.base + "x/hello/world"} {
				resp, body := fwGet(t, c, srv.URL+path)
				assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s: %s", path, body)
				assert.NotContains(t, string(body), fw.notFound, "%s reached the app", path)
			}
		})
	}
}

// TestPyramidStripPrefixMux serves Pyramid under http.StripPrefix in a
// ServeMux next to a Go route.
func TestPyramidStripPrefixMux(t *testing.T) {
	srv := fwPyramid.server(t, nil)
	c := fwClient(t)

	resp, body := fwGet(t, c, srv.URL+"/go/health")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "go ok", string(body))

	resp, body = fwGet(t, c, srv.URL+"/pyramid/hello/mux")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "Hello, mux!", string(body))

	// Not under /pyramid/: the mux answers, Pyramid never sees it.
	resp, body = fwGet(t, c, srv.URL+"/hello/mux")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.NotContains(t, string(body), fwPyramid.notFound)

	resp, body = fwGet(t, c, srv.URL+"/pyramid/urls")
	got := fwDecodeJSON(t, resp, body)
	assert.Equal(t, "/pyramid/hello/world", got["hello"])
	assert.Equal(t, srv.URL+"/pyramid/hello/world", got["external"])
}

// TestDjangoCSRF checks Django's CSRF middleware is on (so the POST views
// of the suite pass only because they are exempt).
func TestDjangoCSRF(t *testing.T) {
	srv := fwDjango.server(t, nil)
	c := fwClient(t)
	resp, body := fwPost(t, c, srv.URL+"/django/csrf", "application/x-www-form-urlencoded", []byte("a=1"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "body: %s", body)
}

// TestFlaskAndBottleSameModuleName checks that two apps whose module is
// app.py in different directories stay apart.
func TestFlaskAndBottleSameModuleName(t *testing.T) {
	flaskSrv := fwFlask.server(t, nil)
	bottleSrv := fwBottle.server(t, nil)
	c := fwClient(t)
	_, flaskBody := fwGet(t, c, flaskSrv.URL+"/flask/no/such/page")
	_, bottleBody := fwGet(t, c, bottleSrv.URL+"/bottle/no/such/page")
	assert.Contains(t, string(flaskBody), fwFlask.notFound)
	assert.Contains(t, string(bottleBody), fwBottle.notFound)
}
