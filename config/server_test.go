package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
	"github.com/gowsgi/wsgi/config"
)

// twoApps is the blog at /blog and the shop at /shop, from testdata.
func twoApps(t *testing.T) *config.Config {
	t.Helper()
	td, err := filepath.Abs("testdata")
	require.NoError(t, err)
	return &config.Config{Apps: []config.App{
		{Name: "blog", Prefix: "/blog/", Dir: filepath.Join(td, "blog"), Module: "app",
			Env: map[string]string{"BLOG_MODE": "test"}},
		{Name: "shop", Prefix: "/shop", Dir: filepath.Join(td, "shop"), Module: "app", Callable: "app"},
	}}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func get(t *testing.T, h http.Handler, path, accept string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestServerRoutesEachPrefixToItsApp(t *testing.T) {
	s, err := config.NewServer(twoApps(t), quietLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	for _, tc := range []struct{ path, body string }{
		{"/blog/post/1", "blog script_name='/blog' path_info='/post/1' mode='test'\n"},
		{"/blog/", "blog script_name='/blog' path_info='/' mode='test'\n"},
		{"/blog", "blog script_name='/blog' path_info='' mode='test'\n"},
		{"/shop/cart", "shop script_name='/shop' path_info='/cart'\n"},
		{"/shop", "shop script_name='/shop' path_info=''\n"},
	} {
		w := get(t, s, tc.path, "")
		assert.Equal(t, http.StatusOK, w.Code, tc.path)
		assert.Equal(t, tc.body, w.Body.String(), tc.path)
	}
	assert.Equal(t, http.StatusNotFound, get(t, s, "/elsewhere", "").Code)
	assert.Equal(t, http.StatusNotFound, get(t, s, "/blogs", "").Code)

	hs := s.Handlers()
	require.Len(t, hs, 2)
	assert.Equal(t, "blog", hs[0].Name())
	assert.Equal(t, "/blog", hs[0].Prefix())
	assert.Equal(t, "shop", hs[1].Name())
	assert.Equal(t, uint64(3), hs[0].Requests())
	assert.Equal(t, uint64(2), hs[1].Requests())
}

func TestServerListsApps(t *testing.T) {
	s, err := config.NewServer(twoApps(t), quietLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	get(t, s, "/blog/x", "")

	w := get(t, s, "/", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Contains(t, w.Body.String(), `<td>blog</td><td><a href="/blog/">/blog</a></td><td>wsgi</td><td>1</td>`)
	assert.Contains(t, w.Body.String(), `<td>shop</td><td><a href="/shop/">/shop</a></td><td>wsgi</td><td>0</td>`)

	w = get(t, s, "/", "application/json")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var list struct {
		Apps []struct {
			Name, Prefix, Protocol string
			Requests               int
		}
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list), w.Body.String())
	require.Len(t, list.Apps, 2)
	assert.Equal(t, "blog", list.Apps[0].Name)
	assert.Equal(t, "/blog", list.Apps[0].Prefix)
	assert.Equal(t, "wsgi", list.Apps[0].Protocol)
	assert.Equal(t, 1, list.Apps[0].Requests)
	assert.Equal(t, "shop", list.Apps[1].Name)
	assert.NotContains(t, w.Body.String(), "worker", "no worker id outside the command's workers")

	s.SetWorker(3)
	w = get(t, s, "/", "application/json")
	var page struct{ Worker int }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page), w.Body.String())
	assert.Equal(t, 3, page.Worker)
	assert.Contains(t, get(t, s, "/", "text/html").Body.String(), "<p>Answered by worker 3.</p>")

	r := httptest.NewRequest(http.MethodPost, "/", nil)
	w = httptest.NewRecorder()
	s.ServeHTTP(w, r)
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
}

func TestServerRootAppHasNoListing(t *testing.T) {
	cfg := twoApps(t)
	cfg.Apps[1].Prefix = "/"
	s, err := config.NewServer(cfg, quietLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	assert.Equal(t, "shop script_name='' path_info='/'\n", get(t, s, "/", "application/json").Body.String())
	assert.Equal(t, "shop script_name='' path_info='/other'\n", get(t, s, "/other", "").Body.String())
	assert.Equal(t, "blog script_name='/blog' path_info='/x' mode='test'\n", get(t, s, "/blog/x", "").Body.String())
}

// The built-in functions (and the extra ones) are in every app's Options;
// Python cannot call them yet, so they are called as Go functions.
func TestServerFunctions(t *testing.T) {
	var opts []wsgi.Options
	restore := config.SetNewHandler(func(o wsgi.Options) (*wsgi.Handler, error) {
		opts = append(opts, o)
		return wsgi.New(o)
	})
	defer restore()

	extra := map[string]wsgi.Func{
		"double": func(_ context.Context, args []any) (any, error) { return args[0].(int64) * 2, nil },
	}
	cfg := twoApps(t)
	s, err := config.NewServer(cfg, quietLogger(), extra)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	get(t, s, "/shop/", "")
	get(t, s, "/shop/", "")

	require.Len(t, opts, 2)
	ctx := context.Background()
	for i, o := range opts {
		require.Contains(t, o.Functions, "ping", "app %d", i)
		require.Contains(t, o.Functions, "host", "app %d", i)
		require.Contains(t, o.Functions, "double", "app %d", i)

		got, err := o.Functions["ping"](ctx, []any{"ignored", int64(1)})
		require.NoError(t, err)
		assert.Equal(t, "pong", got)

		got, err = o.Functions["double"](ctx, []any{int64(21)})
		require.NoError(t, err)
		assert.Equal(t, int64(42), got)
	}

	got, err := opts[0].Functions["host"](ctx, nil)
	require.NoError(t, err)
	host, ok := got.(map[string]any)
	require.True(t, ok, "%T", got)
	assert.Equal(t, runtime.Version(), host["go_version"])
	up, ok := host["uptime_seconds"].(float64)
	require.True(t, ok, "%T", host["uptime_seconds"])
	assert.Greater(t, up, 0.0)
	assert.Equal(t, []any{
		map[string]any{"name": "blog", "prefix": "/blog", "requests": int64(0)},
		map[string]any{"name": "shop", "prefix": "/shop", "requests": int64(2)},
	}, host["apps"])
	assert.NotContains(t, host, "worker")

	s.SetWorker(2)
	got, err = opts[0].Functions["host"](ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, got.(map[string]any)["worker"])
}

func TestServerExtraFunctionReplacesBuiltin(t *testing.T) {
	var opts []wsgi.Options
	restore := config.SetNewHandler(func(o wsgi.Options) (*wsgi.Handler, error) {
		opts = append(opts, o)
		return wsgi.New(o)
	})
	defer restore()
	mine := func(context.Context, []any) (any, error) { return "mine", nil }
	s, err := config.NewServer(twoApps(t), quietLogger(), map[string]wsgi.Func{"ping": mine})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	got, err := opts[1].Functions["ping"](context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, "mine", got)
}

func TestServerOptionsMapping(t *testing.T) {
	var opts []wsgi.Options
	restore := config.SetNewHandler(func(o wsgi.Options) (*wsgi.Handler, error) {
		opts = append(opts, o)
		return nil, errors.New("wsgi: not built in this test")
	})
	defer restore()
	td, err := filepath.Abs("testdata")
	require.NoError(t, err)
	logger := quietLogger()
	cfg := &config.Config{AccessLog: true, Apps: []config.App{{
		Name: "blog", Prefix: "/blog/", Dir: filepath.Join(td, "blog"), Module: "app", Callable: "make.app",
		Protocol: "auto", Debug: true, Static: "always", Threads: 3,
		Env:     map[string]string{"A": "1"},
		LogFile: filepath.Join(td, "blog.log"),
		Auth:    &config.Auth{Htpasswd: filepath.Join(td, "users.htpasswd"), Realm: "R", PassAuthorization: true},

		QueueTimeout: "2s", RequestTimeout: "1m", BodyTimeout: "-1ns", MaxBody: 4096,
		TrustedProxies: []string{"10.0.0.0/8"},
		PythonPath:     []string{filepath.Join(td, "shop")},
		Virtualenv:     filepath.Join(td, "shop"),
	}}}
	_, err = config.NewServer(cfg, logger, nil)
	require.Error(t, err)
	require.Len(t, opts, 1)
	o := opts[0]
	assert.NotNil(t, o.Functions)
	o.Functions = nil
	assert.Equal(t, wsgi.Options{
		Name: "blog", Prefix: "/blog", Dir: filepath.Join(td, "blog"), Module: "app", Callable: "make.app",
		Protocol: "auto", Debug: true, Reload: true, Static: true, Threads: 3,
		Env:       map[string]string{"A": "1"},
		LogFile:   filepath.Join(td, "blog.log"),
		BasicAuth: &wsgi.BasicAuth{HtpasswdFile: filepath.Join(td, "users.htpasswd"), Realm: "R", PassAuthorization: true},
		AccessLog: true,
		Logger:    logger,

		QueueTimeout: 2 * time.Second, RequestTimeout: time.Minute, BodyReadTimeout: -1, MaxBodyBytes: 4096,
		TrustedProxies: []string{"10.0.0.0/8"},
		PythonPath:     []string{filepath.Join(td, "shop")},
		Virtualenv:     filepath.Join(td, "shop"),
	}, o)
}

// debug means tracebacks and reload; reload alone, no tracebacks.
func TestServerDebugAndReload(t *testing.T) {
	td, err := filepath.Abs("testdata")
	require.NoError(t, err)
	for _, tc := range []struct {
		debug, reload, noReload bool
		wantDebug, wantReload   bool
	}{
		{false, false, false, false, false},
		{true, false, false, true, true},
		{false, true, false, false, true},
		{true, true, false, true, true},
		{true, true, true, true, false}, // NoReload: a worker whose master restarts it
	} {
		t.Run(fmt.Sprintf("debug=%v,reload=%v,noreload=%v", tc.debug, tc.reload, tc.noReload), func(t *testing.T) {
			cfg := &config.Config{NoReload: tc.noReload, Apps: []config.App{{
				Name: "blog", Dir: filepath.Join(td, "blog"), Module: "app", Debug: tc.debug, Reload: tc.reload,
			}}}
			o := firstOptions(t, cfg)[0]
			assert.Equal(t, tc.wantDebug, o.Debug, "Debug")
			assert.Equal(t, tc.wantReload, o.Reload, "Reload")
		})
	}
}

// The keys take effect: python_path and virtualenv (relative to the file)
// put modules on sys.path, max_body answers 413, trusted_proxies sets
// REMOTE_ADDR.
func TestServerRequestKeysTakeEffect(t *testing.T) {
	dir := t.TempDir()
	minor := strings.Join(strings.SplitN(strings.Fields(wsgi.PythonVersion())[0], ".", 3)[:2], ".")
	site := filepath.Join("venv", "lib", "python"+minor, "site-packages")
	for _, d := range []string{"app", "lib", site} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	files := map[string]string{
		"app/keys_app.py": `import keys_lib, keys_venv

def application(environ, start_response):
    body = "%s %s %s %d\n" % (keys_lib.NAME, keys_venv.NAME, environ["REMOTE_ADDR"], len(environ["wsgi.input"].read()))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
`,
		"lib/keys_lib.py":                   "NAME = 'lib'\n",
		filepath.Join(site, "keys_venv.py"): "NAME = 'venv'\n",
	}
	for name, src := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
	}
	path := filepath.Join(dir, "apps.toml")
	require.NoError(t, os.WriteFile(path, []byte(`[[app]]
name = "keys"
dir = "app"
module = "keys_app"
python_path = ["lib"]
virtualenv = "venv"
max_body = 10
trusted_proxies = ["192.0.2.0/24"]
`), 0o644))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	s, err := config.NewServer(cfg, quietLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	for _, tc := range []struct {
		name, body, remote, forwarded string
		code                          int
		want                          string
	}{
		{"small body", "0123456789", "198.51.100.1:1234", "", http.StatusOK, "lib venv 198.51.100.1 10\n"},
		{"body over max_body", "0123456789a", "198.51.100.1:1234", "", http.StatusRequestEntityTooLarge, ""},
		{"trusted proxy", "", "192.0.2.9:1234", "203.0.113.5", http.StatusOK, "lib venv 203.0.113.5 0\n"},
		{"untrusted proxy", "", "198.51.100.1:1234", "203.0.113.5", http.StatusOK, "lib venv 198.51.100.1 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			r.RemoteAddr = tc.remote
			if tc.forwarded != "" {
				r.Header.Set("X-Forwarded-For", tc.forwarded)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			assert.Equal(t, tc.code, w.Code, w.Body.String())
			if tc.want != "" {
				assert.Equal(t, tc.want, w.Body.String())
			}
		})
	}
}

func TestServerClose(t *testing.T) {
	s, err := config.NewServer(twoApps(t), quietLogger(), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, get(t, s, "/blog/", "").Code)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	assert.Equal(t, http.StatusServiceUnavailable, get(t, s, "/blog/", "").Code)
	assert.Equal(t, http.StatusServiceUnavailable, get(t, s, "/shop/", "").Code)
}

func TestServerLoadFailureClosesTheOthers(t *testing.T) {
	var built []*wsgi.Handler
	restore := config.SetNewHandler(func(o wsgi.Options) (*wsgi.Handler, error) {
		h, err := wsgi.New(o)
		if err == nil {
			built = append(built, h)
		}
		return h, err
	})
	defer restore()

	var logs bytes.Buffer
	cfg := twoApps(t)
	td, err := filepath.Abs("testdata")
	require.NoError(t, err)
	cfg.Apps = append(cfg.Apps, config.App{Name: "broken", Prefix: "/broken", Dir: filepath.Join(td, "broken"), Module: "app"})
	s, err := config.NewServer(cfg, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	require.Error(t, err)
	assert.Nil(t, s)
	assert.Contains(t, err.Error(), `wsgi: app "broken": loading app:application from`)
	var pe *wsgi.PythonError
	require.True(t, errors.As(err, &pe), "%v", err)
	assert.Contains(t, pe.Message, "config test: broken app")

	require.Len(t, built, 2)
	for _, h := range built {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, h.Prefix()+"/", nil))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, "%s must be closed", h.Name())
	}
}

func TestNewServerRefusesBadConfig(t *testing.T) {
	called := false
	restore := config.SetNewHandler(func(o wsgi.Options) (*wsgi.Handler, error) {
		called = true
		return nil, errors.New("unreachable")
	})
	defer restore()
	cfg := twoApps(t)
	cfg.Apps[1].Prefix = "/blog"
	_, err := config.NewServer(cfg, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `wsgi: app "shop": prefix "/blog" is already used by app "blog"`)
	assert.False(t, called, "no app is loaded from a bad config")

	_, err = config.NewServer(nil, nil, nil)
	assert.Error(t, err)
}

func TestServerFromFile(t *testing.T) {
	cfg, err := config.Load("testdata/good.toml")
	require.NoError(t, err)
	opts := firstOptions(t, cfg)
	assert.Equal(t, filepath.Join(cfg.Apps[0].Dir), opts[0].Dir)
	assert.True(t, filepath.IsAbs(opts[0].LogFile))
	assert.True(t, opts[0].Static)
	assert.True(t, opts[0].AccessLog)
}

// firstOptions returns the Options NewServer builds the first app of cfg
// with, without building it.
func firstOptions(t *testing.T, cfg *config.Config) []wsgi.Options {
	t.Helper()
	var opts []wsgi.Options
	restore := config.SetNewHandler(func(o wsgi.Options) (*wsgi.Handler, error) {
		opts = append(opts, o)
		return nil, errors.New("wsgi: not built in this test")
	})
	defer restore()
	_, err := config.NewServer(cfg, nil, nil)
	require.Error(t, err)
	require.Len(t, opts, 1)
	return opts
}
