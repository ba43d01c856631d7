package wsgi_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// staticSecret is in testdata/static/app.py, which sits next to the static
// directory: no static response may contain it.
const staticSecret = "app-source-must-not-leak"

func staticHandler(t *testing.T, dir string) *wsgi.Handler {
	t.Helper()
	h, _ := newHandler(t, wsgi.Options{Dir: dir, App: "app", Static: true, Prefix: "/p"})
	return h
}

func staticFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/static/static", name))
	require.NoError(t, err)
	return b
}

func TestStaticContent(t *testing.T) {
	h := staticHandler(t, "testdata/static")
	cases := []struct {
		path, ctype string
		file        string // "" when the app answers
	}{
		{"/p/static/app.js", "text/javascript; charset=utf-8", "app.js"},
		{"/p/static/style.css", "text/css; charset=utf-8", "style.css"},
		{"/p/static/sub/page.txt", "text/plain; charset=utf-8", "sub/page.txt"},
		{"/p/static/dir.d/file.txt", "text/plain; charset=utf-8", "dir.d/file.txt"},
		{"/p/static/blob.unknownext", "application/octet-stream", "blob.unknownext"},
		{"/p/static/app.js.gz", "application/gzip", "app.js.gz"},
		{"/p/static", "text/plain", ""},
		{"/p/staticx/app.js", "text/plain", ""},
		{"/p/other/static/app.js", "text/plain", ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			rec := do(h, "GET", c.path, nil)
			require.Equal(t, 200, rec.Code, rec.Body.String())
			assert.Equal(t, c.ctype, rec.Header().Get("Content-Type"))
			if c.file == "" {
				assert.Equal(t, "app:"+strings.TrimPrefix(c.path, "/p"), rec.Body.String())
				return
			}
			want := staticFile(t, c.file)
			assert.Equal(t, want, rec.Body.Bytes())
			hdr := rec.Header()
			assert.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
			assert.Equal(t, "max-age=60", hdr.Get("Cache-Control"))
			assert.Equal(t, "bytes", hdr.Get("Accept-Ranges"))
			assert.Empty(t, hdr.Get("Content-Encoding"))
			assert.Regexp(t, `^"[0-9a-f]+-[0-9a-f]+"$`, hdr.Get("Etag"))
			assert.NotEmpty(t, hdr.Get("Last-Modified"))
		})
	}
}

func TestStaticNotFoundAndMethods(t *testing.T) {
	h := staticHandler(t, "testdata/static")
	for _, path := range []string{
		"/p/static/",
		"/p/static/missing.js",
		"/p/static/sub",
		"/p/static/sub/",
		"/p/static/dir.d",
		"/p/static/.hidden",
		"/p/static/app.js/",
		"/p/static/sub//page.txt",
		"/p/static/./app.js",
	} {
		t.Run(path, func(t *testing.T) {
			rec := do(h, "GET", path, nil)
			assert.Equal(t, 404, rec.Code)
			assert.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
			assert.Empty(t, rec.Header().Get("Etag"))
		})
	}
	for _, method := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		t.Run(method, func(t *testing.T) {
			rec := do(h, method, "/p/static/app.js", strings.NewReader("x"))
			assert.Equal(t, 405, rec.Code)
			assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
		})
	}
	t.Run("no static dir", func(t *testing.T) {
		h, _ := newHandler(t, wsgi.Options{Dir: "testdata/auth", App: "app", Static: true})
		assert.Equal(t, 404, do(h, "GET", "/static/app.py", nil).Code)
		assert.Equal(t, 200, do(h, "GET", "/other", nil).Code)
	})
	t.Run("static is a file", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "app.py"), []byte("def application(e, s): pass\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "static"), nil, 0o644))
		_, err := wsgi.New(wsgi.Options{Dir: dir, App: "app", Static: true})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not a directory")
	})
	t.Run("static off", func(t *testing.T) {
		h, _ := newHandler(t, wsgi.Options{Dir: "testdata/static", App: "app", Prefix: "/p"})
		rec := do(h, "GET", "/p/static/app.js", nil)
		assert.Equal(t, "app:/static/app.js", rec.Body.String())
	})
}

func TestStaticHead(t *testing.T) {
	h := staticHandler(t, "testdata/static")
	srv := serve(t, h)
	want := staticFile(t, "app.js")
	resp, err := http.Head(srv.URL + "/p/static/app.js")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, body)
	assert.Equal(t, int64(len(want)), resp.ContentLength)
	assert.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"))
}

func TestStaticConditional(t *testing.T) {
	h := staticHandler(t, "testdata/static")
	first := do(h, "GET", "/p/static/style.css", nil)
	require.Equal(t, 200, first.Code)
	etag, modified := first.Header().Get("Etag"), first.Header().Get("Last-Modified")
	require.NotEmpty(t, etag)
	require.NotEmpty(t, modified)
	mtime, err := http.ParseTime(modified)
	require.NoError(t, err)

	cases := []struct {
		name   string
		header []string
		want   int
	}{
		{"if-none-match", []string{"If-None-Match", etag}, 304},
		{"if-none-match weak", []string{"If-None-Match", "W/" + etag}, 304},
		{"if-none-match list", []string{"If-None-Match", `"nope", ` + etag}, 304},
		{"if-none-match star", []string{"If-None-Match", "*"}, 304},
		{"if-none-match other", []string{"If-None-Match", `"nope"`}, 200},
		{"if-modified-since", []string{"If-Modified-Since", modified}, 304},
		{"if-modified-since later", []string{"If-Modified-Since", mtime.Add(time.Hour).UTC().Format(http.TimeFormat)}, 304},
		{"if-modified-since earlier", []string{"If-Modified-Since", mtime.Add(-time.Hour).UTC().Format(http.TimeFormat)}, 200},
		{"if-none-match wins", []string{"If-None-Match", `"nope"`, "If-Modified-Since", modified}, 200},
		{"if-match other", []string{"If-Match", `"nope"`}, 412},
		{"if-match", []string{"If-Match", etag}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(h, "GET", "/p/static/style.css", nil, c.header...)
			assert.Equal(t, c.want, rec.Code)
			switch c.want {
			case 304:
				assert.Empty(t, rec.Body.String())
				assert.Equal(t, etag, rec.Header().Get("Etag"))
				assert.Empty(t, rec.Header().Get("Content-Length"))
			case 200:
				assert.Equal(t, staticFile(t, "style.css"), rec.Body.Bytes())
			}
		})
	}
}

func TestStaticRange(t *testing.T) {
	h := staticHandler(t, "testdata/static")
	want := staticFile(t, "app.js")
	etag := do(h, "GET", "/p/static/app.js", nil).Header().Get("Etag")

	t.Run("single", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/app.js", nil, "Range", "bytes=10-19")
		require.Equal(t, 206, rec.Code)
		assert.Equal(t, want[10:20], rec.Body.Bytes())
		assert.Equal(t, "bytes 10-19/"+strconv.Itoa(len(want)), rec.Header().Get("Content-Range"))
		assert.Equal(t, "10", rec.Header().Get("Content-Length"))
		assert.Equal(t, "text/javascript; charset=utf-8", rec.Header().Get("Content-Type"))
	})
	t.Run("suffix", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/app.js", nil, "Range", "bytes=-5")
		require.Equal(t, 206, rec.Code)
		assert.Equal(t, want[len(want)-5:], rec.Body.Bytes())
	})
	t.Run("multi", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/app.js", nil, "Range", "bytes=0-4,100-109")
		require.Equal(t, 206, rec.Code)
		mt, params, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "multipart/byteranges", mt)
		mr := multipart.NewReader(rec.Body, params["boundary"])
		var parts [][]byte
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			assert.Equal(t, "text/javascript; charset=utf-8", p.Header.Get("Content-Type"))
			b, err := io.ReadAll(p)
			require.NoError(t, err)
			parts = append(parts, b)
		}
		assert.Equal(t, [][]byte{want[0:5], want[100:110]}, parts)
	})
	t.Run("unsatisfiable", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/app.js", nil, "Range", "bytes=100000-")
		assert.Equal(t, 416, rec.Code)
		assert.Equal(t, "bytes */"+strconv.Itoa(len(want)), rec.Header().Get("Content-Range"))
	})
	t.Run("if-range match", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/app.js", nil, "Range", "bytes=0-1", "If-Range", etag)
		assert.Equal(t, 206, rec.Code)
	})
	t.Run("if-range stale", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/app.js", nil, "Range", "bytes=0-1", "If-Range", `"stale"`)
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, want, rec.Body.Bytes())
	})
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}

func TestStaticGzip(t *testing.T) {
	h := staticHandler(t, "testdata/static")
	plain, gz := staticFile(t, "app.js"), staticFile(t, "app.js.gz")
	require.Equal(t, plain, gunzip(t, gz), "testdata: app.js.gz must be app.js compressed")
	identityETag := do(h, "GET", "/p/static/app.js", nil).Header().Get("Etag")

	cases := []struct {
		accept string
		gzip   bool
	}{
		{"gzip", true},
		{"GZIP", true},
		{"x-gzip", true},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"deflate, gzip;q=0.001", true},
		{" gzip ; q=1 ", true},
		{"*", true},
		{"identity, *;q=0.5", true},
		{"", false},
		{"identity", false},
		{"br, deflate", false},
		{"gzip;q=0", false},
		{"gzip;q=0.0", false},
		{"gzip;q=0.000", false},
		{"gzip; q=0", false},
		{"gzip;Q=0", false},
		{"*;q=0", false},
		{"gzip;q=0, *", false},
		{"*, gzip;q=0", false},
		{"gzip;q=abc", false},
		{"gzip;q=2", false},
		{"gzipper", false},
	}
	for _, c := range cases {
		t.Run("accept "+c.accept, func(t *testing.T) {
			var header []string
			if c.accept != "" {
				header = []string{"Accept-Encoding", c.accept}
			}
			rec := do(h, "GET", "/p/static/app.js", nil, header...)
			require.Equal(t, 200, rec.Code)
			hdr := rec.Header()
			assert.Equal(t, []string{"Accept-Encoding"}, hdr.Values("Vary"))
			assert.Equal(t, "text/javascript; charset=utf-8", hdr.Get("Content-Type"))
			if c.gzip {
				assert.Equal(t, "gzip", hdr.Get("Content-Encoding"))
				assert.Equal(t, gz, rec.Body.Bytes())
				assert.Equal(t, strconv.Itoa(len(gz)), hdr.Get("Content-Length"))
				assert.NotEqual(t, identityETag, hdr.Get("Etag"))
				assert.Regexp(t, `^"[0-9a-f]+-[0-9a-f]+-gz"$`, hdr.Get("Etag"))
			} else {
				assert.Empty(t, hdr.Get("Content-Encoding"))
				assert.Equal(t, plain, rec.Body.Bytes())
				assert.Equal(t, identityETag, hdr.Get("Etag"))
			}
		})
	}

	t.Run("several headers", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/p/static/app.js", nil)
		r.Header.Add("Accept-Encoding", "br")
		r.Header.Add("Accept-Encoding", "gzip")
		rec := record(h, r)
		assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
	})

	t.Run("no sibling, no vary", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/style.css", nil, "Accept-Encoding", "gzip")
		assert.Equal(t, 200, rec.Code)
		assert.Empty(t, rec.Header().Get("Vary"))
		assert.Empty(t, rec.Header().Get("Content-Encoding"))
	})

	t.Run("gz requested by name", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/app.js.gz", nil, "Accept-Encoding", "gzip")
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, "application/gzip", rec.Header().Get("Content-Type"))
		assert.Empty(t, rec.Header().Get("Content-Encoding"))
		assert.Equal(t, gz, rec.Body.Bytes())
	})

	t.Run("304 of the gzip variant", func(t *testing.T) {
		first := do(h, "GET", "/p/static/app.js", nil, "Accept-Encoding", "gzip")
		etag := first.Header().Get("Etag")
		rec := do(h, "GET", "/p/static/app.js", nil, "Accept-Encoding", "gzip", "If-None-Match", etag)
		assert.Equal(t, 304, rec.Code)
		assert.Equal(t, "Accept-Encoding", rec.Header().Get("Vary"))
		assert.Empty(t, rec.Header().Get("Content-Encoding"))
		// The identity variant does not match the gzip ETag.
		rec = do(h, "GET", "/p/static/app.js", nil, "If-None-Match", etag)
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, plain, rec.Body.Bytes())
	})

	t.Run("range on the compressed bytes", func(t *testing.T) {
		rec := do(h, "GET", "/p/static/app.js", nil, "Accept-Encoding", "gzip", "Range", "bytes=0-9")
		require.Equal(t, 206, rec.Code)
		assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
		assert.Equal(t, gz[:10], rec.Body.Bytes())
		assert.Equal(t, "bytes 0-9/"+strconv.Itoa(len(gz)), rec.Header().Get("Content-Range"))
		assert.Equal(t, "10", rec.Header().Get("Content-Length"))
	})

	t.Run("over a real connection", func(t *testing.T) {
		srv := serve(t, h)
		req, err := http.NewRequest("GET", srv.URL+"/p/static/app.js", nil)
		require.NoError(t, err)
		// Set by hand, so the transport leaves the body compressed.
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, int64(len(gz)), resp.ContentLength)
		assert.Empty(t, resp.TransferEncoding)
		assert.Equal(t, gz, body)

		head, err := http.NewRequest("HEAD", srv.URL+"/p/static/app.js", nil)
		require.NoError(t, err)
		head.Header.Set("Accept-Encoding", "gzip")
		resp, err = http.DefaultClient.Do(head)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, int64(len(gz)), resp.ContentLength)
		assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	})
}

func TestStaticStripPrefix(t *testing.T) {
	h := staticHandler(t, "testdata/static")
	mux := http.NewServeMux()
	mux.Handle("/mnt/", http.StripPrefix("/mnt", h))
	rec := do(mux, "GET", "/mnt/p/static/style.css", nil)
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, staticFile(t, "style.css"), rec.Body.Bytes())
	rec = do(mux, "GET", "/mnt/p/other", nil)
	assert.Equal(t, "app:/other", rec.Body.String())
}

// copyDir copies the regular files and directories under src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	require.NoError(t, err)
}

// rawGet sends target byte for byte, as http.Get would clean some paths.
func rawGet(t *testing.T, addr, target string) (int, http.Header, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

func TestStaticTraversal(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/static", dir)
	static := filepath.Join(dir, "static")
	// Symlinks are made here rather than committed.
	require.NoError(t, os.Symlink("../app.py", filepath.Join(static, "up.js")))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(static, "passwd.txt")))
	require.NoError(t, os.Symlink("..", filepath.Join(static, "parent")))
	require.NoError(t, os.Symlink("app.js", filepath.Join(static, "inside.js")))
	require.NoError(t, os.Symlink("sub", filepath.Join(static, "sublink")))
	require.NoError(t, os.Symlink("sub/../../app.py", filepath.Join(static, "sneaky.js")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "app.py"), filepath.Join(static, "abs.js")))

	h := staticHandler(t, dir)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()

	passwd, _ := os.ReadFile("/etc/passwd")
	for _, target := range []string{
		"/p/static/../app.py",
		"/p/static/%2e%2e/app.py",
		"/p/static/%2E%2E/app.py",
		"/p/static/..%2Fapp.py",
		"/p/static/..%2fapp.py",
		"/p/static/a%2F..%2F..%2Fapp.py",
		"/p/static/sub/..%2F..%2Fapp.py",
		"/p/static/sub/../../app.py",
		"/p/static/%5c..%5capp.py",
		"/p/static/..%5Capp.py",
		`/p/static/..\app.py`,
		"/p/static/up.js",
		"/p/static/sneaky.js",
		"/p/static/abs.js",
		"/p/static/parent/app.py",
		"/p/static/passwd.txt",
		"/p/static//etc/passwd",
		"/p/static/%2Fetc%2Fpasswd",
		"/p/static/%2fetc/passwd",
		"/p/static/sub%2Fpage.txt",
		"/p/static/./app.js",
		"/p/static/%2e/app.js",
		"/p/static/.hidden",
		"/p/static/%00",
		"/p/static/app.py%00.js",
		"/p/static/../static/app.js",
	} {
		t.Run(target, func(t *testing.T) {
			status, hdr, body := rawGet(t, addr, target)
			assert.Contains(t, []int{400, 404}, status, body)
			assert.NotContains(t, body, staticSecret)
			if len(passwd) > 0 {
				assert.NotContains(t, body, "root:")
			}
			assert.Equal(t, "text/plain; charset=utf-8", hdr.Get("Content-Type"))
			assert.Empty(t, hdr.Get("Etag"))
		})
	}

	// Symlinks that stay inside the root are followed.
	for target, file := range map[string]string{
		"/p/static/inside.js":        "app.js",
		"/p/static/sublink/page.txt": "sub/page.txt",
	} {
		t.Run(target, func(t *testing.T) {
			status, _, body := rawGet(t, addr, target)
			assert.Equal(t, 200, status)
			assert.Equal(t, string(staticFile(t, file)), body)
		})
	}

	// Outside the static prefix, the app answers, whatever the path.
	status, _, body := rawGet(t, addr, "/p/x/../static/app.js")
	assert.Equal(t, 200, status)
	assert.Equal(t, "app:/x/../static/app.js", body)
}

func BenchmarkStatic(b *testing.B) {
	h, err := wsgi.New(wsgi.Options{Dir: "testdata/static", App: "app", Static: true, Prefix: "/p"})
	require.NoError(b, err)
	b.Cleanup(func() { _ = h.Close() })
	for _, accept := range []string{"", "gzip"} {
		b.Run("accept="+accept, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("GET", "/p/static/app.js", nil)
				if accept != "" {
					r.Header.Set("Accept-Encoding", accept)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
