package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestASGILifespan: SIGTERM runs the app's lifespan shutdown, then exits 0.
func TestASGILifespan(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "lifespan.log")
	p := start(t, []string{"WSGI_TEST_LIFESPAN=" + log},
		"-addr", "127.0.0.1:0", "-dir", testdata, "-app", "asgi_lifespan:app", "-protocol", "asgi", "-log-format", "json")
	code, body := get(t, "http://"+p.addr(t)+"/x")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "asgi /x", body)
	assert.Equal(t, 0, p.stop(t), p.stderr())
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "lifespan.startup\nlifespan.shutdown\natexit\n", string(b),
		"lifespan shutdown, then the interpreter is finalized (atexit handlers run)")
}

// TestASGIStartupFailed: a failed startup exits non-zero with the app's
// message, before listening.
func TestASGIStartupFailed(t *testing.T) {
	t.Parallel()
	code, _, stderr := runBinary(t, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "asgi_lifespan:failing", "-protocol", "auto")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "cannot reach the database")
	assert.NotContains(t, stderr, "wsgi: serving")
}

// TestLimitFlags: -request-timeout answers 504 on time; a bad
// -trusted-proxies value is refused before listening.
func TestLimitFlags(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "slow", "-log-format", "json",
		"-request-timeout", "200ms", "-body-timeout", "5s", "-trusted-proxies", "127.0.0.1, 10.0.0.0/8")
	code, _ := get(t, "http://"+p.addr(t)+"/")
	assert.Equal(t, http.StatusGatewayTimeout, code)
	assert.Equal(t, 0, p.stop(t), "shutdown waits (within the grace period) for the timed-out request's Python: %s", p.stderr())

	code2, _, stderr := runBinary(t, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "hello", "-trusted-proxies", "nonsense")
	assert.Equal(t, 1, code2)
	assert.Contains(t, stderr, "neither an address nor a CIDR")
}
