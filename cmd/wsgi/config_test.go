package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeConfig writes an apps.toml whose apps live in testdata and returns
// its path. %[1]q in content is the testdata directory.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "apps.toml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(content, testdata)), 0o644))
	return path
}

func TestConfigServesTwoApps(t *testing.T) {
	t.Parallel()
	// The file's addr (port 0) and log_format (json) apply.
	p := start(t, nil, "-config", filepath.Join(testdata, "apps.toml"))
	base := "http://" + p.addr(t)

	code, body := get(t, base+"/a/x")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "hello script_name='/a' path_info='/x'\n", body)
	code, body = get(t, base+"/b/y")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "hello script_name='/b' path_info='/y'\n", body)
	code, _ = get(t, base+"/c/")
	assert.Equal(t, http.StatusNotFound, code)

	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	var list struct {
		Apps []struct {
			Name, Prefix string
			Requests     int
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	resp.Body.Close()
	require.Len(t, list.Apps, 2)
	assert.Equal(t, "a", list.Apps[0].Name)
	assert.Equal(t, "/a", list.Apps[0].Prefix)
	assert.Equal(t, 1, list.Apps[0].Requests)
	assert.Equal(t, "b", list.Apps[1].Name)
	assert.Equal(t, "/b", list.Apps[1].Prefix)

	assert.Equal(t, 0, p.stop(t), p.stderr())
	var mounted []map[string]any
	for _, line := range strings.Split(p.stderr(), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "log_format json from the file: %s", line)
		if rec["msg"] == "wsgi: mounted" {
			mounted = append(mounted, rec)
		}
	}
	require.Len(t, mounted, 2, p.stderr())
	assert.Equal(t, "a", mounted[0]["app"])
	assert.Equal(t, "/a", mounted[0]["prefix"])
	assert.Equal(t, testdata, mounted[0]["dir"], "dir is relative to the config file")
	assert.Equal(t, "b", mounted[1]["app"])
	assert.Equal(t, "/b", mounted[1]["prefix"])
	assert.Contains(t, p.stderr(), `"msg":"wsgi: stopped"`)
}

func TestConfigFlagsOverrideTheFile(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { taken.Close() })
	path := writeConfig(t, `addr = "`+taken.Addr().String()+`"
log_format = "json"

[[app]]
name = "hello"
prefix = "/hello"
dir = %[1]q
module = "hello"
`)

	t.Run("file addr", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runBinary(t, "-config", path)
		assert.Equal(t, 1, code, stderr)
		assert.Contains(t, stderr, `"msg":"wsgi: cannot listen"`)
		assert.Contains(t, stderr, taken.Addr().String())
	})
	t.Run("-addr and -log-format", func(t *testing.T) {
		t.Parallel()
		p := start(t, nil, "-config", path, "-addr", "127.0.0.1:0", "-log-format", "text")
		addr := p.addr(t)
		assert.NotEqual(t, taken.Addr().String(), addr)
		code, body := get(t, "http://"+addr+"/hello/x")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "hello script_name='/hello' path_info='/x'\n", body)
		assert.Equal(t, 0, p.stop(t), p.stderr())
		assert.Contains(t, p.stderr(), `msg="wsgi: mounted" app=hello prefix=/hello`, "text, from -log-format")
	})
}

// An app's max_body and request_timeout from the file apply to the
// requests the command serves.
func TestConfigRequestKeys(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `log_format = "json"

[[app]]
name = "small"
prefix = "/small"
dir = %[1]q
module = "hello"
max_body = 10

[[app]]
name = "slow"
prefix = "/slow"
dir = %[1]q
module = "slow"
request_timeout = "100ms"
`)
	p := start(t, nil, "-config", path, "-addr", "127.0.0.1:0")
	base := "http://" + p.addr(t)
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
	}{
		{"body within max_body", http.MethodPost, "/small/", "0123456789", http.StatusOK},
		{"body over max_body", http.MethodPost, "/small/", "0123456789a", http.StatusRequestEntityTooLarge},
		{"no max_body elsewhere", http.MethodPost, "/slow/", strings.Repeat("x", 100), http.StatusGatewayTimeout},
		{"past request_timeout", http.MethodGet, "/slow/", "", http.StatusGatewayTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			began := time.Now()
			resp, err := c.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.code, resp.StatusCode)
			if tc.code == http.StatusGatewayTimeout {
				assert.Less(t, time.Since(began), 900*time.Millisecond, "504 from Go, before slow.py's second is up")
			}
		})
	}
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

func TestConfigBadFile(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `[[app]]
name = "a"
prefix = "/a"
dir = %[1]q
module = "hello"
prefx = "/b"

[[app]]
name = "b"
prefix = "/a"
dir = "nope"
module = "hello"
`)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runBinary(t, "-config", path, "-addr", "127.0.0.1:0", "-log-format", format)
			assert.Equal(t, 1, code, stderr)
			want := path + `:6: app "a": key "prefx" is not allowed`
			if format == "json" {
				b, err := json.Marshal(want)
				require.NoError(t, err)
				want = string(b[1 : len(b)-1])
			}
			assert.Contains(t, stderr, want)
			assert.NotContains(t, stderr, "wsgi: serving", "nothing listens")
		})
	}

	t.Run("several problems", func(t *testing.T) {
		t.Parallel()
		path := writeConfig(t, `[[app]]
name = "a"
prefix = "/a"
dir = %[1]q
module = "hello"

[[app]]
name = "b"
prefix = "/a"
dir = "nope"
`)
		code, _, stderr := runBinary(t, "-config", path, "-addr", "127.0.0.1:0")
		assert.Equal(t, 1, code, stderr)
		assert.Contains(t, stderr, "wsgi: bad config; problems follow")
		assert.Contains(t, stderr, "\n"+path+`:9: app "b": prefix "/a" is already used by app "a" (line 3)`+"\n")
		assert.Contains(t, stderr, "\n"+path+`:10: app "b": dir "nope" does not exist`+"\n")
		assert.Contains(t, stderr, "\n"+path+`:7: app "b": missing key "module"`+"\n")
		assert.NotContains(t, stderr, "wsgi: serving")
	})

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runBinary(t, "-config", filepath.Join(t.TempDir(), "none.toml"))
		assert.Equal(t, 1, code, stderr)
		assert.Contains(t, stderr, "none.toml")
		assert.NotContains(t, stderr, "wsgi: serving")
	})
}

func TestConfigAppFailsToLoad(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `[[app]]
name = "good"
prefix = "/good"
dir = %[1]q
module = "hello"

[[app]]
name = "bad"
prefix = "/bad"
dir = %[1]q
module = "import_error"
`)
	code, _, stderr := runBinary(t, "-config", path, "-addr", "127.0.0.1:0")
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, `wsgi: app \"bad\": loading import_error:application`)
	assert.Contains(t, stderr, "Traceback (most recent call last):")
	assert.Contains(t, stderr, "wsgi_test_no_such_module")
	assert.NotContains(t, stderr, "wsgi: serving")
}

// The flags that describe one app are refused with -config, and the
// message names the file's key instead.
func TestConfigFlagConflicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flags []string
		key   string
	}{
		{[]string{"-app", "hello"}, "module and callable"},
		{[]string{"-module", "hello"}, "module"},
		{[]string{"-callable", "app"}, "callable"},
		{[]string{"-dir", "."}, "dir"},
		{[]string{"-prefix", "/x"}, "prefix"},
		{[]string{"-protocol", "asgi"}, "protocol"},
		{[]string{"-threads", "2"}, "threads"},
		{[]string{"-debug"}, "debug"},
		{[]string{"-reload"}, "reload"},
		{[]string{"-queue-timeout", "1s"}, "queue_timeout"},
		{[]string{"-max-body", "10"}, "max_body"},
		{[]string{"-ws-compression", "off"}, "websocket_compression"},
		{[]string{"-body-timeout", "1s"}, "body_timeout"},
		{[]string{"-request-timeout", "1s"}, "request_timeout"},
		{[]string{"-trusted-proxies", "10.0.0.0/8"}, "trusted_proxies"},
	} {
		t.Run(tc.flags[0], func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			args := append([]string{"-config", "apps.toml"}, tc.flags...)
			assert.Equal(t, 2, run(context.Background(), args, &stderr))
			assert.Contains(t, stderr.String(), "wsgi: -config may not be combined with "+tc.flags[0]+
				": the config file describes the apps (set "+tc.key+" in each [[app]])")
			assert.Contains(t, stderr.String(), "usage: wsgi")
		})
	}
	t.Run("bad -log-format", func(t *testing.T) {
		t.Parallel()
		var stderr bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), []string{"-config", "apps.toml", "-log-format", "xml"}, &stderr))
		assert.Contains(t, stderr.String(), "-log-format")
	})
}

// TestRunConfigInProcess serves a config file from run itself and stops it
// through ctx, as main does on a signal.
func TestRunConfigInProcess(t *testing.T) {
	serveInProcess(t, []string{"-config", filepath.Join(testdata, "apps.toml"), "-addr", "127.0.0.1:0"},
		"/b/in-process", "hello script_name='/b' path_info='/in-process'\n")
}
