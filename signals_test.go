package wsgi_test

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gowsgi/wsgi"
)

func TestAppCannotTakeSignals(t *testing.T) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	defer signal.Stop(ch)

	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "signals"})
	assert.Contains(t, logs.String(), "the app set a handler for a signal while importing")
	assert.Contains(t, logs.String(), "terminated")

	rec := do(h, "GET", "/", nil)
	assert.Contains(t, rec.Body.String(), "ValueError: signal only works in main thread",
		"requests do not run on Python's main thread")

	assert.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case <-ch:
	case <-time.After(2 * time.Second):
		t.Fatal("Go did not receive SIGTERM: the app took it")
	}
}
