package wsgi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// The ASGI event loop has no thread of its own: request goroutines and a
// driver goroutine run it (cpython.ASGI). These tests cover the hazards of
// that design (RATIONALE.md, "ASGI: a loop that request goroutines
// drive"), in this process and, through TestASGIDrivenLoopVariants, in
// child processes with GOMAXPROCS 1 and 4 and asyncio's debug mode.

const drivenChildEnv = "WSGI_TEST_DRIVEN_CHILD"

func TestASGIDrivenLoop(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_driven:app", Protocol: "asgi"})
	srv := serve(t, h)
	client := &http.Client{Timeout: 10 * time.Second} // a missed wake-up fails, not hangs
	get := func(t *testing.T, path string) map[string]any {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode, "%s", b)
		return decode(t, b)
	}
	// parallel runs n requests at once and returns their answers.
	parallel := func(t *testing.T, n int, path func(i int) string) []map[string]any {
		t.Helper()
		out := make([]map[string]any, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = get(t, path(i))
			}()
		}
		wg.Wait()
		return out
	}

	t.Run("SleepOnIdleServer", func(t *testing.T) {
		// The timer is registered during the eager step: the driver must
		// re-arm for it, or the request hangs.
		for range 3 {
			start := time.Now()
			m := get(t, "/sleep?ms=50")
			wall := time.Since(start)
			assert.GreaterOrEqual(t, m["elapsed"], 0.05)
			assert.Less(t, m["elapsed"], 0.2, "asyncio.sleep(0.05) took %v", m["elapsed"])
			assert.Less(t, wall, 500*time.Millisecond)
			time.Sleep(100 * time.Millisecond) // idle between them
		}
	})

	t.Run("QueueWithLifespanWorker", func(t *testing.T) {
		for _, m := range parallel(t, 20, func(int) string { return "/queue?n=5" }) {
			assert.Equal(t, []any{0.0, 2.0, 4.0, 6.0, 8.0}, m["results"])
		}
	})

	t.Run("Executor", func(t *testing.T) {
		// The executors' threads wake the loop through its self-pipe.
		for _, m := range parallel(t, 10, func(int) string { return "/executor" }) {
			assert.NotEqual(t, m["here"], m["executor"])
			assert.NotEqual(t, m["here"], m["to_thread"])
		}
	})

	t.Run("ContextVarsIsolated", func(t *testing.T) {
		answers := parallel(t, 50, func(i int) string { return fmt.Sprintf("/contextvar?id=r%d&ms=%d", i, i%7) })
		for i, m := range answers {
			assert.Nil(t, m["before"], "a request sees no other request's context")
			assert.Equal(t, fmt.Sprintf("r%d", i), m["after"])
		}
	})

	t.Run("CurrentTask", func(t *testing.T) {
		for _, m := range parallel(t, 10, func(int) string { return "/task" }) {
			assert.Equal(t, true, m["task"], "current_task() is the request's task across steps")
			assert.Equal(t, true, m["loop"], "get_running_loop() is the app's loop")
			assert.Equal(t, true, m["all_tasks"])
		}
	})

	t.Run("AbandonedAsyncGenerators", func(t *testing.T) {
		before := get(t, "/stats")["agen_closed"].(float64)
		parallel(t, 20, func(int) string { return "/agen" })
		require.True(t, waitFor(3*time.Second, func() bool {
			return get(t, "/stats")["agen_closed"].(float64) >= before+20
		}), "every abandoned generator was closed by the loop")
		assert.NotContains(t, logs.String(), "GeneratorExit")
	})

	t.Run("GILReleasedMidStep", func(t *testing.T) {
		// A step that blocks (time.sleep releases the GIL) holds the loop;
		// the others wait for it and then run.
		start := time.Now()
		answers := parallel(t, 8, func(i int) string {
			if i%2 == 0 {
				return "/gil?ms=20"
			}
			return "/sleep?ms=1"
		})
		for _, m := range answers {
			assert.NotNil(t, m)
		}
		assert.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("SocketOfTheApp", func(t *testing.T) {
		// A database driver's socket: the reply comes later, and only the
		// driver, parked on the selector, can see it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					line, err := bufio.NewReader(c).ReadString('\n')
					if err != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
					_, _ = c.Write([]byte("pong:" + line))
				}()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		for _, m := range parallel(t, 10, func(int) string { return fmt.Sprintf("/db?port=%d", port) }) {
			assert.Equal(t, "pong:ping\n", m["line"])
		}
	})

	t.Run("Subprocess", func(t *testing.T) {
		for _, m := range parallel(t, 3, func(int) string { return "/subprocess" }) {
			assert.Equal(t, "out\n", m["out"])
			assert.Equal(t, 0.0, m["code"])
		}
	})

	t.Run("StreamingWithTimers", func(t *testing.T) {
		resp, err := client.Get(srv.URL + "/stream?n=5")
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, "chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n", string(b))
	})

	t.Run("SpinningTaskDoesNotStarve", func(t *testing.T) {
		get(t, "/spin")
		defer get(t, "/spin?stop=1")
		start := time.Now()
		for _, m := range parallel(t, 40, func(i int) string {
			if i%4 == 0 {
				return "/sleep?ms=20"
			}
			return "/stats"
		}) {
			if e, ok := m["elapsed"]; ok {
				assert.Less(t, e, 1.0, "timers still fire beside a task that never sleeps")
			}
		}
		assert.Less(t, time.Since(start), 10*time.Second)
		spins := get(t, "/stats")["spins"].(float64)
		assert.Greater(t, spins, 0.0, "the spinning task ran")
	})

	t.Run("Backpressure", func(t *testing.T) {
		// A client that does not read: send() waits once Go's queue is
		// full, far below the 32 MiB the app has to send.
		before := get(t, "/stats")["sent"].(float64)
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET /big?n=512 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		require.NoError(t, err)
		time.Sleep(300 * time.Millisecond)
		sent := get(t, "/stats")["sent"].(float64) - before
		assert.Less(t, sent, 16.0*(1<<20), "the app waited for the client")
		n, err := io.Copy(io.Discard, c)
		require.NoError(t, err)
		assert.Greater(t, n, int64(32<<20))
	})

	t.Run("DisconnectWhileWaiting", func(t *testing.T) {
		before := get(t, "/stats")["disconnects"].(float64)
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		require.NoError(t, err)
		_, err = io.WriteString(c, "GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		line, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		require.Contains(t, line, "200")
		require.NoError(t, c.Close())
		assert.True(t, waitFor(3*time.Second, func() bool {
			return get(t, "/stats")["disconnects"].(float64) == before+1
		}), "receive() answered http.disconnect")
	})

	t.Run("Load", func(t *testing.T) {
		// Eager requests and suspended ones together.
		answers := parallel(t, 200, func(i int) string {
			switch i % 4 {
			case 0:
				return "/sleep?ms=2"
			case 1:
				return "/queue?n=2"
			case 2:
				return "/task"
			}
			return "/stats"
		})
		assert.Len(t, answers, 200)
	})

	assert.NotContains(t, logs.String(), `"level":"ERROR"`)
}

// TestASGIDrivenStarlette: anyio's worker threads (a sync endpoint),
// sniffio, StreamingResponse and BackgroundTask on the driven loop.
func TestASGIDrivenStarlette(t *testing.T) {
	skipWithoutFrameworks(t)
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_driven_starlette:app", Protocol: "asgi"})
	srv := serve(t, h)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	for range 5 {
		code, body := get("/sync")
		require.Equal(t, 200, code, body)
		assert.Contains(t, body, `"thread"`)
	}
	code, body := get("/library")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"library":"asyncio"}`, body)
	code, body = get("/stream")
	assert.Equal(t, 200, code)
	assert.Equal(t, "chunk0\nchunk1\nchunk2\n", body)
	for range 3 {
		code, body = get("/background")
		assert.Equal(t, 200, code)
		assert.Equal(t, "ok", body)
	}
	assert.True(t, waitFor(3*time.Second, func() bool {
		_, body := get("/count")
		return body == `{"done":3}`
	}), "the background tasks ran")
	assert.NotContains(t, logs.String(), `"level":"ERROR"`)
}

// TestASGIDrivenLoopVariants runs the tests above in child processes: on
// one P and on four, with asyncio's debug mode (which checks that loop
// methods are called from the loop's thread).
func TestASGIDrivenLoopVariants(t *testing.T) {
	if os.Getenv(drivenChildEnv) != "" {
		t.Skip("this is a child")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	for _, procs := range []int{1, 4} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			runChild(t, "TestASGIDrivenLoop", drivenChildEnv+"=1", fmt.Sprintf("GOMAXPROCS=%d", procs),
				"PYTHONASYNCIODEBUG=1")
		})
	}
}

// TestASGIGILWaitCounted: each ASGI request's wait for its app's loop and
// the GIL at its start is in Metrics().GILWait, as a WSGI request's wait
// for the GIL is.
func TestASGIGILWaitCounted(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_driven:app", Protocol: "asgi"})
	before := h.Metrics().GILWait.Count
	for range 5 {
		require.Equal(t, 200, do(h, "GET", "/hello", nil).Code)
	}
	assert.Equal(t, before+5, h.Metrics().GILWait.Count)
}
