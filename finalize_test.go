package wsgi_test

import (
	"context"
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

func TestFinalizeOnClose(t *testing.T) {
	for _, scenario := range []string{"last", "stuck"} {
		t.Run(scenario, func(t *testing.T) {
			atexitFile := filepath.Join(t.TempDir(), "atexit")
			cmd := exec.Command(os.Args[0], "-test.run=^TestFinalizeOnCloseChild$", "-test.v")
			cmd.Env = append(os.Environ(), finalizeChildEnv+"="+scenario, "WSGI_ATEXIT_FILE="+atexitFile)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Contains(t, string(out), "--- PASS: TestFinalizeOnCloseChild", "the child ran: %s", out)
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
