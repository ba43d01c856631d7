//go:build cgo

package cpython

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRequest implements Request and panics in the method named by
// panicIn.
type fakeRequest struct {
	panicIn string
	logged  []string
}

func (f *fakeRequest) maybePanic(name string) {
	if f.panicIn == name {
		panic("boom in " + name)
	}
}

func (f *fakeRequest) StartResponse(packed string, nheaders int, hasExcInfo bool) (int, string) {
	f.maybePanic("start_response")
	return StartResponseOK, ""
}

func (f *fakeRequest) Write(p []byte) error {
	f.maybePanic("write")
	return nil
}

func (f *fakeRequest) EarlyHints(packed string, nheaders int) error {
	f.maybePanic("early_hints")
	return nil
}

// Read fails for read(3); read(5) is direct: Take reads "hello".
func (f *fakeRequest) Read(op int, n int64) (int64, bool, error) {
	if n == 5 {
		return 5, true, nil
	}
	f.maybePanic("read")
	return 0, false, errors.New("wsgi: no body here")
}

func (f *fakeRequest) Take(dst []byte) (int, error) {
	f.maybePanic("take")
	return copy(dst, "hello"), nil
}

func (f *fakeRequest) Context() context.Context { return context.Background() }

func (f *fakeRequest) LogErrors(text []byte) {
	f.logged = append(f.logged, string(text))
	f.maybePanic("errors")
}

func loadCalls(t *testing.T) *App {
	t.Helper()
	require.NoError(t, Initialize([]string{"REQUEST_METHOD"}))
	app, _, err := LoadApp(0, 1, "calls", "testdata", "calls", "application", "", nil)
	require.NoError(t, err)
	t.Cleanup(app.Free)
	return app
}

// call runs the app once for req and returns its body.
func call(t *testing.T, app *App, req Request) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h := Register(req)
	defer h.Release()
	buf := make([]byte, 4096)
	var c Call
	st := app.Start(&c, h, nil, buf, nil)
	require.Equal(t, Done, st.Kind, "%+v", st.Err)
	return string(buf[:st.Copied])
}

// A Go panic in a callback must become a Python exception, never unwind
// through Python frames (that would leave the GIL held).
func TestCallbackPanicsBecomePythonExceptions(t *testing.T) {
	app := loadCalls(t)
	for _, where := range []string{"start_response", "write", "read", "take", "errors", "early_hints"} {
		t.Run(where, func(t *testing.T) {
			body := call(t, app, &fakeRequest{panicIn: where})
			for _, line := range strings.Split(body, "\n") {
				name, _, _ := strings.Cut(line, " ")
				switch {
				case name != where:
					assert.NotContains(t, line, "boom", line)
				case where == "errors":
					// A failing log write is dropped, not raised.
					assert.Equal(t, "errors ok", line)
				default:
					assert.Contains(t, line, "Error: wsgi: internal error in", line)
					assert.Contains(t, line, "boom in "+where, line)
				}
			}
		})
	}
	// The interpreter is healthy afterwards: the GIL was released each time.
	for range 1000 {
		body := call(t, app, &fakeRequest{})
		require.Contains(t, body, "start_response ok")
		require.Contains(t, body, "take ok")
		require.Contains(t, body, "early_hints ok")
	}
}

func TestStaleHandle(t *testing.T) {
	h := Register(&fakeRequest{})
	h.Release()
	assert.Nil(t, h.request(), "a released handle finds nothing")
	assert.Nil(t, Handle(0).request())
	assert.Nil(t, Handle(1<<30).request())
}

func TestExecutable(t *testing.T) {
	exe := Executable()
	require.NotEmpty(t, exe)
	assert.Contains(t, exe, "/python"+MinorVersion())
}
