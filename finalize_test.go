package wsgi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// Finalizing ends the interpreter for the whole process, so each scenario
// runs in a child test process: the parent re-runs this test binary with
// finalizeChildEnv naming the scenario.
const finalizeChildEnv = "WSGI_TEST_FINALIZE_CHILD"

// TestWSGIOnlyFootprint: a process that serves only WSGI apps does not
// import asyncio, nor uvloop's ssl (and libcrypto): about 8 MiB of RSS.
// The child process is fresh; this one has imported ASGI apps.
func TestWSGIOnlyFootprint(t *testing.T) {
	runChild(t, "TestWSGIOnlyFootprintChild", finalizeChildEnv+"=footprint")
}

func TestWSGIOnlyFootprintChild(t *testing.T) {
	if os.Getenv(finalizeChildEnv) != "footprint" {
		t.Skip("run by TestWSGIOnlyFootprint in a child process")
	}
	h, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "sysinfo"})
	require.NoError(t, err)
	defer h.Close()
	info := map[string]string{}
	require.NoError(t, json.Unmarshal(do(h, "GET", "/", nil).Body.Bytes(), &info))
	assert.Empty(t, info["loaded"], "asyncio and ssl are imported with the first ASGI app")

	a, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "asgi"})
	require.NoError(t, err, "the first ASGI app imports it")
	require.NoError(t, a.Close())
}

// runChild runs the test named test in a child process of this test
// binary, with env added, and fails unless it passes.
func runChild(t *testing.T, test string, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: "+test, "the child ran: %s", out)
}

func TestFinalizeOnClose(t *testing.T) {
	for _, scenario := range []string{"last", "stuck"} {
		t.Run(scenario, func(t *testing.T) {
			atexitFile := filepath.Join(t.TempDir(), "atexit")
			runChild(t, "TestFinalizeOnCloseChild", finalizeChildEnv+"="+scenario, "WSGI_ATEXIT_FILE="+atexitFile)
			b, err := os.ReadFile(atexitFile)
			require.NoError(t, err)
			assert.Equal(t, "atexit\n", string(b), "finalized once, by the last Close")
		})
	}
}

// TestFinalizeOnCloseChild is a scenario of TestFinalizeOnClose; run alone,
// it skips.
func TestFinalizeOnCloseChild(t *testing.T) {
	scenario := os.Getenv(finalizeChildEnv)
	if scenario == "" {
		t.Skip("run by TestFinalizeOnClose in a child process")
	}
	atexitFile := os.Getenv("WSGI_ATEXIT_FILE")
	finalized := func() bool {
		_, err := os.Stat(atexitFile)
		return err == nil
	}
	open := func(o wsgi.Options) *wsgi.Handler {
		o.Dir, o.App = "testdata", "atexit_app"
		h, err := wsgi.New(o)
		require.NoError(t, err)
		return h
	}
	switch scenario {
	case "last":
		a := open(wsgi.Options{FinalizeOnClose: true})
		b := open(wsgi.Options{})
		require.NoError(t, a.Close())
		assert.False(t, finalized(), "b is still open")
		c := open(wsgi.Options{})
		assert.Equal(t, "ok", do(c, "GET", "/", nil).Body.String())
		require.NoError(t, b.Close())
		assert.False(t, finalized(), "c is still open")
		require.NoError(t, c.Close())
		assert.True(t, finalized(), "the last Close finalizes")
		_, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "atexit_app"})
		assert.ErrorIs(t, err, wsgi.ErrFinalized)

	case "stuck":
		h := open(wsgi.Options{FinalizeOnClose: true, RequestTimeout: 100 * time.Millisecond})
		srv := serve(t, h)
		resp, err := http.Get(srv.URL + "/sleep?1.0")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "Python sleeps on")
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, h.Shutdown(ctx), context.DeadlineExceeded)
		assert.False(t, finalized(), "no finalizing under a stuck request")
		other := open(wsgi.Options{})
		assert.Equal(t, "ok", do(other, "GET", "/", nil).Body.String(), "the interpreter is up")
		require.NoError(t, other.Close())
		assert.False(t, finalized(), "h is not closed yet")
		require.NoError(t, h.Close(), "Python returned")
		assert.True(t, finalized())
	}
}
