package wsgi_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

func TestAccessLog(t *testing.T) {
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing", AccessLog: true})
	srv := serve(t, h)
	for _, p := range []string{"/closes", "/raise-before", "/raise-mid-stream"} {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		_, _ = readAllErr(resp)
	}
	byURI := map[string]map[string]any{}
	for _, rec := range logs.records(t) {
		if rec["msg"] == "wsgi: access" {
			byURI[rec["uri"].(string)] = rec
			assert.Equal(t, "failing:application", rec["app"])
		}
	}
	require.Len(t, byURI, 3, logs.String())
	assert.Equal(t, 200.0, byURI["/closes"]["status"])
	assert.Equal(t, "GET", byURI["/closes"]["method"])
	assert.Greater(t, byURI["/closes"]["bytes"], 0.0)
	assert.Equal(t, 500.0, byURI["/raise-before"]["status"])
	assert.Equal(t, true, byURI["/raise-mid-stream"]["aborted"])
}

func TestLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "WSGI.log")
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing", Name: "blog", LogFile: path})
	do(h, "GET", "/raise-before", nil)
	require.NoError(t, h.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(b)
	assert.Contains(t, text, "app=blog")
	assert.Contains(t, text, "boom before start_response")
	assert.Contains(t, text, "Traceback")
	assert.Contains(t, logs.String(), "boom before start_response", "the Logger gets the records too")

	// Appended, not truncated, by the next handler.
	h2, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing", Name: "blog", LogFile: path})
	do(h2, "GET", "/raise-after-start", nil)
	require.NoError(t, h2.Close())
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), text))
	assert.Contains(t, string(b), "boom after start_response")
}

// logOnceCases are ways apps set up Python logging, and where each of an
// app's two records ("import record", logged at import, and "request
// record") must appear, once: "slog" (a record with logger=),
// "wsgi.errors" (a record with stream=wsgi.errors) or "app" (the app's own
// handler, whose output the app answers).
var logOnceCases = []struct{ app, importTo, requestTo string }{
	{"plain", "slog", "slog"},
	{"basicconfig_level", "slog", "slog"},
	{"radicale", "app", "wsgi.errors"},
	{"basicconfig_stream", "app", "app"},
	{"basicconfig_filename", "app", "app"},
	{"dictconfig_root", "app", "app"},
	{"dictconfig_named", "app", "app"},
	{"dictconfig_nopropagate", "app", "app"},
	{"dictconfig_filtered", "slog", "slog"},
	{"nullhandler", "slog", "slog"},
	{"lastresort", "slog", "slog"},
}

// Logging's configuration is process-wide, so each app of
// TestLogEachRecordOnce runs in a child process named by this variable.
const logOnceChildEnv = "WSGI_TEST_LOG_ONCE_CHILD"

func TestLogEachRecordOnce(t *testing.T) {
	for _, tc := range logOnceCases {
		t.Run(tc.app, func(t *testing.T) {
			runChild(t, "TestLogEachRecordOnceChild", logOnceChildEnv+"="+tc.app)
		})
	}
}

func TestLogEachRecordOnceChild(t *testing.T) {
	app := os.Getenv(logOnceChildEnv)
	if app == "" {
		t.Skip("run by TestLogEachRecordOnce in a child process")
	}
	i := slices.IndexFunc(logOnceCases, func(c struct{ app, importTo, requestTo string }) bool { return c.app == app })
	require.GreaterOrEqual(t, i, 0, app)
	tc := logOnceCases[i]
	h, logs := newHandler(t, wsgi.Options{Dir: "testdata/logonce", App: app})
	resp := do(h, "GET", "/", nil)
	require.Equal(t, 200, resp.Code, resp.Body.String())
	for text, want := range map[string]string{"import record": tc.importTo, "request record": tc.requestTo} {
		got := map[string]int{}
		if n := strings.Count(resp.Body.String(), text); n > 0 {
			got["app"] = n
		}
		for _, rec := range logs.records(t) {
			if !strings.Contains(rec["msg"].(string), text) {
				continue
			}
			switch {
			case rec["logger"] != nil:
				got["slog"]++
			case rec["stream"] == "wsgi.errors":
				got["wsgi.errors"]++
			default:
				got["other"]++
			}
		}
		assert.Equal(t, map[string]int{want: 1}, got, "%s\napp: %s\nlogs:\n%s", text, resp.Body, logs)
	}
}

func readAllErr(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
