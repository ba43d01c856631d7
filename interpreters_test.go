package wsgi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
	"github.com/gowsgi/wsgi/internal/cpython"
)

// The Interpreters tests run on Python 3.13 and later (the py313 and
// py314 builds of `make other-pythons`); the default build checks that
// older ones are refused.

// pythonMinorNumber is the linked Python's minor version (11 for 3.11).
func pythonMinorNumber(t *testing.T) int {
	t.Helper()
	_, minor, _ := strings.Cut(cpython.MinorVersion(), ".")
	n, err := strconv.Atoi(minor)
	require.NoError(t, err)
	return n
}

func needInterpreters(t *testing.T) {
	t.Helper()
	if pythonMinorNumber(t) < 13 {
		t.Skipf("Interpreters needs Python 3.13+; this build links %s", cpython.MinorVersion())
	}
}

func interpOptions(o wsgi.Options) wsgi.Options {
	if o.Dir == "" {
		o.Dir = "testdata/interp"
	}
	if o.App == "" {
		o.App = "app"
	}
	if o.Interpreters == 0 {
		o.Interpreters = 2
	}
	if o.Functions == nil {
		o.Functions = map[string]wsgi.Func{"double": func(_ context.Context, args []any) (any, error) {
			return args[0].(int64) * 2, nil
		}}
	}
	return o
}

// concurrently runs n requests for target at once and returns their
// decoded JSON bodies.
func concurrently(t *testing.T, h http.Handler, n int, target string) []map[string]any {
	t.Helper()
	out := make([]map[string]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w := do(h, "GET", target, nil)
			if assert.Equal(t, 200, w.Code, w.Body.String()) {
				out[i] = decode(t, w.Body.Bytes())
			}
		})
	}
	wg.Wait()
	return out
}

// interpsOf is the set of interpreter ids that answered.
func interpsOf(res []map[string]any) map[float64]int {
	seen := map[float64]int{}
	for _, r := range res {
		if r != nil {
			seen[r["interp"].(float64)]++
		}
	}
	return seen
}

func TestInterpretersOptions(t *testing.T) {
	minor := pythonMinorNumber(t)
	cases := []struct {
		name string
		opts wsgi.Options
		want string // "" if New succeeds on 3.13+
	}{
		{"negative", wsgi.Options{Interpreters: -1}, "Interpreters -1 is negative"},
		{"too many", wsgi.Options{Interpreters: 1000}, "Interpreters 1000: at most"},
		{"fewer threads", wsgi.Options{Interpreters: 3, Threads: 2}, "Threads 2 is fewer than Interpreters 3"},
		{"finalize", wsgi.Options{FinalizeOnClose: true}, "FinalizeOnClose cannot be combined"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := wsgi.New(interpOptions(c.opts))
			require.Error(t, err)
			if minor < 13 && c.name != "negative" && c.name != "too many" {
				// Older Pythons are refused first, naming the version.
				assert.Contains(t, err.Error(), "needs Python 3.13 or later")
				assert.Contains(t, err.Error(), "links Python "+cpython.MinorVersion())
				return
			}
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestInterpretersServe(t *testing.T) {
	needInterpreters(t)
	before := cpython.SubInterpreters()
	h, logs := newHandler(t, interpOptions(wsgi.Options{Threads: 4}))
	assert.LessOrEqual(t, cpython.SubInterpreters(), before+2)

	// Requests in flight together spread over both interpreters, none of
	// them the main one.
	seen := interpsOf(concurrently(t, h, 4, "/who?sleep=0.3"))
	require.Len(t, seen, 2, "%v", seen)
	for id, n := range seen {
		assert.NotZero(t, id, "a sub-interpreter, not the main one")
		assert.Equal(t, 2, n, "the least busy interpreter gets the request: %v", seen)
	}

	t.Run("gohost", func(t *testing.T) {
		res := concurrently(t, h, 4, "/gohost?sleep=0.2")
		assert.Len(t, interpsOf(res), 2)
		for _, r := range res {
			assert.Equal(t, 42.0, r["got"])
		}
	})
	t.Run("logging and wsgi.errors", func(t *testing.T) {
		res := concurrently(t, h, 2, "/log?sleep=0.2")
		ids := interpsOf(res)
		require.Len(t, ids, 2)
		for id := range ids {
			assert.Contains(t, logs.String(), fmt.Sprintf("from interpreter %d", int(id)))
			assert.Contains(t, logs.String(), fmt.Sprintf("errors from interpreter %d", int(id)))
		}
	})
	t.Run("streaming and wsgi.input", func(t *testing.T) {
		body := strings.Repeat("0123456789", 20000)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				w := do(h, "GET", "/stream", nil)
				assert.Equal(t, "chunk 0\nchunk 1\nchunk 2\n", w.Body.String())
				w = do(h, "POST", "/echo", strings.NewReader(body))
				assert.Equal(t, len(body), w.Body.Len())
				assert.True(t, w.Body.String() == body)
			})
		}
		wg.Wait()
	})
	t.Run("live view", func(t *testing.T) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			do(h, "GET", "/who?sleep=0.5", nil)
		}()
		require.True(t, waitFor(2*time.Second, func() bool { return h.Stats().Busy == 1 }))
		s := h.Snapshot()
		require.Len(t, s.Requests, 1)
		assert.Equal(t, "/who", s.Requests[0].Path)
		assert.NotZero(t, s.Requests[0].Thread)
		assert.Empty(t, s.Requests[0].Stack)
		assert.Contains(t, s.StackError, "not read while a handler of the process uses sub-interpreters")
		<-done
		// The slot is given back once Python is done, after the response.
		require.True(t, waitFor(2*time.Second, func() bool { return h.Stats().Busy == 0 }))
	})
	t.Run("stats", func(t *testing.T) {
		st := h.Stats()
		assert.Equal(t, 4, st.Threads)
		assert.Equal(t, 0, st.Busy)
		assert.GreaterOrEqual(t, st.Requests, uint64(4+4+2+8+1))
	})
}

// TestInterpretersNested: a gohost call from a sub-interpreter that serves
// a main-interpreter app on the same thread, and back.
func TestInterpretersNested(t *testing.T) {
	needInterpreters(t)
	main, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "hello"})
	h, _ := newHandler(t, interpOptions(wsgi.Options{Threads: 4, Functions: map[string]wsgi.Func{
		"main_hello": func(context.Context, []any) (any, error) {
			return do(main, "GET", "/", nil).Body.String(), nil
		},
	}}))
	// hello's list bodies have nothing to close: after 64 of them its
	// requests run inline, on the calling goroutine, so the nested request
	// takes the main interpreter's GIL on the sub-interpreter's thread.
	for range 70 {
		do(main, "GET", "/", nil)
	}
	for range 3 {
		res := concurrently(t, h, 4, "/nested?sleep=0.1")
		assert.Len(t, interpsOf(res), 2)
		for _, r := range res {
			assert.Equal(t, "Hello, world!", r["got"])
		}
	}
}

// TestInterpretersASGI: an ASGI app gets a driven event loop, with its
// lifespan, in each interpreter.
func TestInterpretersASGI(t *testing.T) {
	needInterpreters(t)
	h, _ := newHandler(t, interpOptions(wsgi.Options{App: "asgiapp:app", Protocol: "auto", Threads: 8}))
	assert.Equal(t, "asgi", h.Protocol())
	for range 2 {
		res := concurrently(t, h, 4, "/who?sleep=0.2")
		seen := interpsOf(res)
		require.Len(t, seen, 2, "%v", seen)
		for _, r := range res {
			assert.Equal(t, 1.0, r["started"], "one lifespan startup per interpreter")
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			assert.Equal(t, "chunk 0\nchunk 1\nchunk 2\n", do(h, "GET", "/stream?sleep=0.1", nil).Body.String())
		})
	}
	wg.Wait()
}

func TestInterpretersPool(t *testing.T) {
	needInterpreters(t)
	h, err := wsgi.New(interpOptions(wsgi.Options{}))
	require.NoError(t, err, "%+v", err)
	made := cpython.SubInterpreters()
	require.NoError(t, h.Close())
	// Closed interpreters are reused, not made again (nor torn down).
	for range 3 {
		h, err = wsgi.New(interpOptions(wsgi.Options{}))
		require.NoError(t, err, "%+v", err)
		assert.Len(t, interpsOf(concurrently(t, h, 2, "/who?sleep=0.2")), 2)
		require.NoError(t, h.Close())
	}
	assert.Equal(t, made, cpython.SubInterpreters())
}

func TestInterpretersRequestTimeout(t *testing.T) {
	needInterpreters(t)
	h, logs := newHandler(t, interpOptions(wsgi.Options{RequestTimeout: 300 * time.Millisecond}))
	srv := serve(t, h)
	// A busy loop in each interpreter: both answered 504 on time, both
	// interrupted (the exception raised in the right interpreter's thread).
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			status, _, _ := fetch(t, srv.URL, "/spin")
			assert.Equal(t, http.StatusGatewayTimeout, status)
		})
	}
	wg.Wait()
	assert.Less(t, time.Since(start), 2*time.Second)
	require.True(t, waitFor(3*time.Second, func() bool { return h.Stats().Busy == 0 }), "the interrupts freed both threads: %+v", h.Stats())
	assert.Equal(t, 2, strings.Count(logs.String(), `"error":"_wsgi_host.RequestTimeout"`), "both interrupted: %s", logs.String())
	// No stale interrupt hits the next requests.
	assert.Len(t, interpsOf(concurrently(t, h, 4, "/who?sleep=0.1")), 2)
}

func TestInterpretersReload(t *testing.T) {
	needInterpreters(t)
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/interp/app.py")
	require.NoError(t, err)
	file := filepath.Join(dir, "app.py")
	require.NoError(t, os.WriteFile(file, src, 0o644))
	h, _ := newHandler(t, interpOptions(wsgi.Options{Dir: dir, Reload: true}))
	for _, r := range concurrently(t, h, 2, "/who?sleep=0.2") {
		assert.Equal(t, 1.0, r["version"])
	}
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(string(src), "VERSION = 1", "VERSION = 2", 1)), 0o644))
	require.True(t, waitFor(5*time.Second, func() bool {
		w := do(h, "GET", "/who", nil)
		return w.Code == 200 && decode(t, w.Body.Bytes())["version"] == 2.0
	}), "reloaded")
	// A new generation in each interpreter.
	res := concurrently(t, h, 2, "/who?sleep=0.2")
	assert.Len(t, interpsOf(res), 2)
	for _, r := range res {
		assert.Equal(t, 2.0, r["version"])
	}
}

func TestInterpretersSinglePhaseExtension(t *testing.T) {
	needInterpreters(t)
	// _testsinglephase exists in the pyenv builds (Debian leaves it out).
	if _, err := cpython.Eval("import importlib.util\nresult = importlib.util.find_spec('_testsinglephase') is not None"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := cpython.Eval("import importlib.util\nresult = importlib.util.find_spec('_testsinglephase') is not None"); ok != "True" {
		t.Skip("this Python has no _testsinglephase")
	}
	_, err := wsgi.New(interpOptions(wsgi.Options{Dir: "testdata/singlephase"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the extension module _testsinglephase cannot be imported in an isolated sub-interpreter")
	assert.Contains(t, err.Error(), "set Interpreters to 0 or 1")
	assert.Contains(t, err.Error(), "-workers")
	var pe *wsgi.PythonError
	require.True(t, errors.As(err, &pe))
	assert.Equal(t, "ImportError", pe.Type)
	// The main interpreter loads it.
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata/singlephase", App: "app"})
	assert.Equal(t, "loaded\n", do(h, "GET", "/", nil).Body.String())
}

func TestInterpretersNoLeaks(t *testing.T) {
	needInterpreters(t)
	h, _ := newHandler(t, interpOptions(wsgi.Options{Threads: 4}))
	round := func() {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for j := range 50 {
					switch (i + j) % 3 {
					case 0:
						do(h, "GET", "/stream", nil)
					case 1:
						do(h, "POST", "/echo", strings.NewReader("some body"))
					default:
						do(h, "GET", "/gohost", nil)
					}
				}
			})
		}
		wg.Wait()
	}
	// Allocated blocks of each interpreter (each has its own allocator).
	blocks := func() []int {
		var out []int
		for i := 1; i <= cpython.SubInterpreters(); i++ {
			s, err := cpython.EvalIn(i, "import gc, sys\ngc.collect()\nresult = sys.getallocatedblocks()")
			require.NoError(t, err)
			n, err := strconv.Atoi(s)
			require.NoError(t, err)
			out = append(out, n)
		}
		return out
	}
	round() // warm up: caches, thread states
	b0 := blocks()
	for range 3 {
		round()
	}
	b1 := blocks()
	for i := range b0 {
		assert.Less(t, b1[i]-b0[i], 300, "interpreter %d: %d blocks before, %d after", i+1, b0[i], b1[i])
	}
}

// distPackages is Debian's directory of pure-Python packages (Flask,
// Django), which the pyenv builds import too when it is on sys.path.
const distPackages = "/usr/lib/python3/dist-packages"

func TestInterpretersFrameworks(t *testing.T) {
	needInterpreters(t)
	for _, c := range []struct {
		name, pkg string
		opts      wsgi.Options
	}{
		{"flask", "flask", wsgi.Options{Dir: "testdata/flaskapp", App: "app:app"}},
		{"django", "django", wsgi.Options{Dir: "testdata/djangoapp", App: "djsite.wsgi:application"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(distPackages, c.pkg)); err != nil {
				t.Skipf("no %s in %s", c.pkg, distPackages)
			}
			if c.pkg == "django" && pythonMinorNumber(t) >= 13 {
				// Debian's Django (4.2) imports cgi, which 3.13 removed.
				if src, err := os.ReadFile(filepath.Join(distPackages, "django/http/request.py")); err == nil && strings.Contains("\n"+string(src), "\nimport cgi\n") {
					t.Skip("Debian's Django imports the cgi module, which Python 3.13 removed")
				}
			}
			c.opts.Interpreters = 2
			c.opts.Threads = 4
			c.opts.PythonPath = []string{distPackages}
			h, _ := newHandler(t, c.opts)
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					w := do(h, "GET", fmt.Sprintf("/hello/n%d", i), nil)
					assert.Equal(t, 200, w.Code, w.Body.String())
					assert.Equal(t, fmt.Sprintf("Hello, n%d!", i), w.Body.String())
					w = do(h, "GET", "/stream?n=3", nil)
					assert.Equal(t, 200, w.Code, w.Body.String())
				})
			}
			wg.Wait()
		})
	}
}
