package wsgi_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

func writeApp(t *testing.T, dir, version, word string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "reloadhelper.py"), []byte("WORD = '"+word+"'\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app.py"), []byte(reloadAppSource(version)), 0o644))
}

func reloadAppSource(version string) string {
	return "import reloadhelper as helper\n\n\ndef application(environ, start_response):\n" +
		"    start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\")])\n" +
		"    return [(helper.WORD + \" " + version + "\").encode()]\n"
}

// body waits until the app answers want (reloads are asynchronous).
func eventually(t *testing.T, h *wsgi.Handler, want string) {
	t.Helper()
	var last string
	ok := waitFor(5*time.Second, func() bool {
		last = do(h, "GET", "/", nil).Body.String()
		return last == want
	})
	require.True(t, ok, "want %q, last answer %q", want, last)
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	writeApp(t, dir, "v1", "hello")
	h, logs := newHandler(t, wsgi.Options{Dir: dir, App: "app", Reload: true, Debug: true})
	assert.Equal(t, "hello v1", do(h, "GET", "/", nil).Body.String())

	// A change to the app module, and to a module it imports, is picked up.
	writeApp(t, dir, "v2", "bonjour")
	eventually(t, h, "bonjour v2")

	// Broken code: 500 with the traceback, and the watch goes on.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app.py"), []byte("def application(:\n"), 0o644))
	require.True(t, waitFor(5*time.Second, func() bool { return do(h, "GET", "/", nil).Code == 500 }))
	rec := do(h, "GET", "/", nil)
	assert.Contains(t, rec.Body.String(), "SyntaxError")
	assert.Contains(t, rec.Body.String(), "Traceback")
	assert.Contains(t, logs.String(), "reload failed")

	// Fixing it brings the app back.
	writeApp(t, dir, "v3", "hallo")
	eventually(t, h, "hallo v3")
}

func TestReloadInFlightFinishesOnOldCode(t *testing.T) {
	dir := t.TempDir()
	slow := "import time\n\n\ndef application(environ, start_response):\n" +
		"    time.sleep(0.3)\n    start_response(\"200 OK\", [])\n    return [b\"old\"]\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app.py"), []byte(slow), 0o644))
	h, _ := newHandler(t, wsgi.Options{Dir: dir, App: "app", Reload: true})
	done := make(chan string)
	go func() { done <- do(h, "GET", "/", nil).Body.String() }()
	time.Sleep(50 * time.Millisecond)
	fast := "def application(environ, start_response):\n    start_response(\"200 OK\", [])\n    return [b\"new\"]\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app.py"), []byte(fast), 0o644))
	eventually(t, h, "new")
	assert.Equal(t, "old", <-done)
}

// A .pyc is checked against its source's size and modification time in
// whole seconds: an edit that keeps the size, within the second of the
// import, must still be reloaded. Python writes .pyc files only without
// PYTHONDONTWRITEBYTECODE, which the environment may set: the test runs
// in a child process without it.
func TestReloadSameSizeEditInTheSameSecond(t *testing.T) {
	runChild(t, "TestReloadSameSizeEditInTheSameSecondChild", "PYTHONDONTWRITEBYTECODE=", reloadChildEnv+"=1")
}

const reloadChildEnv = "WSGI_TEST_RELOAD_CHILD"

func TestReloadSameSizeEditInTheSameSecondChild(t *testing.T) {
	if os.Getenv(reloadChildEnv) == "" {
		t.Skip("run by TestReloadSameSizeEditInTheSameSecond in a child process")
	}
	dir := t.TempDir()
	app := filepath.Join(dir, "app.py")
	src := func(v string) []byte {
		return []byte("def application(environ, start_response):\n" +
			"    start_response(\"200 OK\", [])\n    return [b\"" + v + "\"]\n")
	}
	// Both versions dated within one second, after the import writes its .pyc.
	second := time.Now().Truncate(time.Second).Add(2 * time.Second)
	require.NoError(t, os.WriteFile(app, src("v1"), 0o644))
	require.NoError(t, os.Chtimes(app, second, second))
	h, _ := newHandler(t, wsgi.Options{Dir: dir, App: "app", Reload: true})
	assert.Equal(t, "v1", do(h, "GET", "/", nil).Body.String())
	pycs, err := filepath.Glob(filepath.Join(dir, "__pycache__", "app.*.pyc"))
	require.NoError(t, err)
	require.Len(t, pycs, 1, "the import wrote bytecode")

	require.NoError(t, os.WriteFile(app, src("v2"), 0o644))
	require.NoError(t, os.Chtimes(app, second.Add(500*time.Millisecond), second.Add(500*time.Millisecond)))
	eventually(t, h, "v2")
}
