package wsgi_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

type ctxKey struct{}

func bridgeHandler(t *testing.T, release <-chan struct{}) (*wsgi.Handler, *logBuffer) {
	return newHandler(t, wsgi.Options{
		Dir: "testdata", App: "bridge", Threads: 4,
		Functions: map[string]wsgi.Func{
			"ping": func(ctx context.Context, args []any) (any, error) { return "pong", nil },
			"echo": func(ctx context.Context, args []any) (any, error) { return args, nil },
			"fail": func(ctx context.Context, args []any) (any, error) { return nil, errors.New("it failed") },
			"panics": func(ctx context.Context, args []any) (any, error) {
				panic("oops")
			},
			"bad_result": func(ctx context.Context, args []any) (any, error) { return make(chan int), nil },
			"request_value": func(ctx context.Context, args []any) (any, error) {
				v, _ := ctx.Value(ctxKey{}).(string)
				return v, nil
			},
			"wait": func(ctx context.Context, args []any) (any, error) {
				select {
				case <-release:
					return "released", nil
				case <-time.After(5 * time.Second):
					return "timed out: the GIL was held while Go ran", nil
				}
			},
		},
	})
}

func TestGoFunctionsFromPython(t *testing.T) {
	h, logs := bridgeHandler(t, nil)
	tests := []struct{ path, want string }{
		{"/ping", `"pong"`},
		{"/call", `"pong"`},
		{"/echo", `"[None, True, False, 0, -9223372036854775808, 9223372036854775807, 1.5, 'h\u00e9llo \u2603', b'\\x00\\xff', [1, [2, []]], [3, 4], {'': 1, 'k': {'n': None}}]"`},
		{"/overflow", `"OverflowError: gohost: int does not fit Go's int64"`},
		{"/bad-arg", `"TypeError: gohost: cannot pass object to Go"`},
		{"/bad-key", `"TypeError: gohost: dict keys passed to Go must be str, not int"`},
		{"/cycle", `"ValueError: gohost: value nested too deeply (or cyclic)"`},
		{"/missing", `"AttributeError: gohost: app bridge:application has no Go function \"nope\": no such function"`},
		{"/error", `"RuntimeError: it failed"`},
		{"/panic", `"RuntimeError: gohost: Go function \"panics\" panicked: oops"`},
		{"/bad-result", `"TypeError: gohost: cannot pass a Go chan int to Python"`},
		{"/thread", `"pong"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := do(h, "GET", tt.path, nil)
			require.Equal(t, 200, rec.Code)
			assert.Equal(t, tt.want, rec.Body.String())
		})
	}
	r := newRequest("GET", "/context", "")
	rec := record(h, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "from Go middleware")))
	assert.Equal(t, `"from Go middleware"`, rec.Body.String())
	assert.Contains(t, logs.String(), "imported, ping says pong", "gohost works at import time")
}

func TestGoFunctionRunsWithoutTheGIL(t *testing.T) {
	release := make(chan struct{})
	h, _ := bridgeHandler(t, release)
	done := make(chan string)
	go func() { done <- do(h, "GET", "/wait", nil).Body.String() }()
	time.Sleep(50 * time.Millisecond)
	// Python runs for another request while the Go function waits.
	assert.Equal(t, `"pong"`, do(h, "GET", "/ping", nil).Body.String())
	close(release)
	assert.Equal(t, `"released"`, <-done)
}

func TestPythonLoggingGoesToSlog(t *testing.T) {
	h, logs := bridgeHandler(t, nil)
	require.Equal(t, `"logged"`, do(h, "GET", "/log", nil).Body.String())
	var got []map[string]any
	for _, rec := range logs.records(t) {
		if rec["logger"] != nil {
			got = append(got, rec)
		}
	}
	byMsg := map[string]map[string]any{}
	for _, rec := range got {
		byMsg[strings.SplitN(rec["msg"].(string), "\n", 2)[0]] = rec
		assert.Equal(t, "bridge:application", rec["app"])
	}
	require.Contains(t, byMsg, "error record 42")
	assert.Equal(t, "ERROR", byMsg["error record 42"]["level"])
	assert.Equal(t, "other", byMsg["error record 42"]["logger"])
	require.Contains(t, byMsg, "with traceback")
	assert.Contains(t, byMsg["with traceback"]["msg"], "ZeroDivisionError")
	assert.Contains(t, byMsg, "imported, ping says pong")
	assert.Equal(t, "WARN", byMsg["imported, ping says pong"]["level"])
	assert.NotContains(t, byMsg, "info record", "Python's root level (WARNING) still applies")
}

func TestBasicConfigKeepsWorking(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "basicconfig"})
	assert.Equal(t, "1", do(h, "GET", "/", nil).Body.String(), "one root handler: ours, in place of the stderr one")
	assert.Contains(t, logs.String(), `"msg":"[INFO] configured"`, "basicConfig's level and format apply")
	assert.Contains(t, logs.String(), `"msg":"[INFO] in request"`)
}
