package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// -reload re-imports the app when its code changes; -debug does that and
// puts tracebacks in 500 responses, as the config file's debug key.
func TestReloadFlags(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(testdata, "reload.py"))
	require.NoError(t, err)
	for _, tc := range []struct {
		flag       string
		tracebacks bool
	}{
		{"-reload", false},
		{"-debug", true},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			app := filepath.Join(dir, "app.py")
			require.NoError(t, os.WriteFile(app, src, 0o644))
			p := start(t, nil, "-addr", "127.0.0.1:0", "-dir", dir, "-app", "app", tc.flag, "-log-format", "json")
			base := "http://" + p.addr(t)

			code, body := get(t, base+"/")
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, "version 1\n", body)

			code, body = get(t, base+"/raise")
			assert.Equal(t, http.StatusInternalServerError, code)
			if tc.tracebacks {
				assert.Contains(t, body, "Traceback")
				assert.Contains(t, body, "RuntimeError: boom from the app")
			} else {
				assert.NotContains(t, body, "Traceback")
				assert.NotContains(t, body, "boom")
			}

			require.NoError(t, os.WriteFile(app, bytes.Replace(src, []byte("version 1"), []byte("version 2"), 1), 0o644))
			deadline := time.Now().Add(10 * time.Second)
			for body != "version 2\n" && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				_, body = get(t, base+"/")
			}
			assert.Equal(t, "version 2\n", body, "reloaded within 10s\n%s", p.stderr())
			assert.Equal(t, 0, p.stop(t), p.stderr())
		})
	}
}
