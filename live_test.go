package wsgi_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// findRequest returns the snapshot's request for path, if any.
func findRequest(s wsgi.Snapshot, path string) (wsgi.ActiveRequest, bool) {
	for _, r := range s.Requests {
		if r.Path == path {
			return r, true
		}
	}
	return wsgi.ActiveRequest{}, false
}

// stackHas reports whether a frame of stack runs function.
func stackHas(stack []wsgi.Frame, function string) bool {
	for _, f := range stack {
		if f.Function == function {
			return true
		}
	}
	return false
}

// TestSnapshotShowsWhereRequestsWait: a request sleeping in the app shows
// up in the live view, in Python, with the sleeping function on its stack
// (the serving thread's for WSGI, the task's for ASGI); a request waiting
// for the only thread slot shows up queued; all leave the view once done.
func TestSnapshotShowsWhereRequestsWait(t *testing.T) {
	tests := []struct {
		name, app, protocol, function string
		timeout                       time.Duration
	}{
		{"wsgi", "liveview", "wsgi", "linger_in_wsgi_view", 0},
		{"wsgi with a request timeout", "liveview", "wsgi", "linger_in_wsgi_view", 20 * time.Second},
		{"asgi", "liveview_asgi", "asgi", "linger_in_asgi_view", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: tt.app, Protocol: tt.protocol, Threads: 1, RequestTimeout: tt.timeout})
			srv := serve(t, h)

			done := make(chan int, 2)
			get := func(path string) {
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					done <- 0
					return
				}
				_ = resp.Body.Close()
				done <- resp.StatusCode
			}
			go get("/linger?1.5") // /release would wait for the only slot: time ends it
			var lingering wsgi.ActiveRequest
			require.True(t, waitFor(5*time.Second, func() bool {
				r, ok := findRequest(h.Snapshot(), "/linger")
				lingering = r
				return ok && stackHas(r.Stack, tt.function)
			}), "the lingering request with %s on its stack; last seen %+v", tt.function, lingering)
			assert.Equal(t, wsgi.StateInPython, lingering.State)
			assert.Equal(t, "GET", lingering.Method)
			assert.True(t, strings.HasPrefix(lingering.Client, "127.0.0.1:"), lingering.Client)
			assert.Positive(t, lingering.Elapsed)
			last := lingering.Stack[len(lingering.Stack)-1]
			assert.NotEmpty(t, last.File)
			assert.Positive(t, last.Line)

			go get("/queued")
			require.True(t, waitFor(5*time.Second, func() bool {
				r, ok := findRequest(h.Snapshot(), "/queued")
				return ok && r.State == wsgi.StateQueued && len(r.Stack) == 0
			}), "the second request waits for the only slot")

			for range 2 {
				select {
				case code := <-done:
					assert.Equal(t, 200, code)
				case <-time.After(15 * time.Second):
					t.Fatal("the requests did not end")
				}
			}
			require.True(t, waitFor(2*time.Second, func() bool { return len(h.Snapshot().Requests) == 0 }))
		})
	}
}

// TestSnapshotWebSocket: an open WebSocket is in the live view with its
// task's stack.
func TestSnapshotWebSocket(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "liveview_asgi", Protocol: "asgi"})
	srv := serve(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/socket", nil)
	require.NoError(t, err)
	var seen wsgi.ActiveRequest
	assert.True(t, waitFor(5*time.Second, func() bool {
		r, ok := findRequest(h.Snapshot(), "/socket")
		seen = r
		return ok && stackHas(r.Stack, "wait_in_websocket")
	}), "the WebSocket's task waits in wait_in_websocket; last seen %+v", seen)
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	assert.True(t, waitFor(5*time.Second, func() bool { return len(h.Snapshot().Requests) == 0 }))
}

// TestSnapshotASGIWriting: an ASGI response that a client does not read
// is in the live view as writing (Go blocked writing to the client).
func TestSnapshotASGIWriting(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "asgi_driven:app", Protocol: "asgi"})
	srv := serve(t, h)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /big?n=512 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	var seen wsgi.ActiveRequest
	assert.True(t, waitFor(5*time.Second, func() bool {
		r, ok := findRequest(h.Snapshot(), "/big")
		seen = r
		return ok && r.State == wsgi.StateWriting
	}), "last seen %+v", seen)
	_, err = io.Copy(io.Discard, c)
	require.NoError(t, err)
}

// TestSnapshotPastTimeout: a WSGI request past RequestTimeout got its 504
// but its Python runs on (a C call is not interrupted): the live view
// shows it past its timeout, still in the lingering function.
func TestSnapshotPastTimeout(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "liveview", RequestTimeout: 200 * time.Millisecond})
	assert.Equal(t, http.StatusGatewayTimeout, do(h, "GET", "/linger?1.2", nil).Code)
	r, ok := findRequest(h.Snapshot(), "/linger")
	require.True(t, ok, "the request is still in the view after its 504")
	assert.Equal(t, wsgi.StatePastTimeout, r.State)
	assert.GreaterOrEqual(t, r.Elapsed, 200*time.Millisecond)
	assert.True(t, stackHas(r.Stack, "linger_in_wsgi_view"), "%+v", r.Stack)
	require.True(t, waitFor(5*time.Second, func() bool { return len(h.Snapshot().Requests) == 0 }), "gone once Python returns")
}
