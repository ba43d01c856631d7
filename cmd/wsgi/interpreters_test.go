package main

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInterpretersFlag: -interpreters reaches Options.Interpreters; the
// command serves on 3.13+ and exits cleanly (no finalization of the
// sub-interpreters, which aborts), and is refused, naming the version,
// before. The command is built with this test's Python tags (other-pythons).
func TestInterpretersFlag(t *testing.T) {
	bin := binary
	if tags := buildTags(); tags != "" {
		bin = filepath.Join(t.TempDir(), "wsgi")
		out, err := exec.Command("go", "build", "-tags", tags, "-o", bin, ".").CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	runBinary := func(t *testing.T, args ...string) (int, string, string) {
		defer func(b string) { binary = b }(binary)
		binary = bin
		return runBinary(t, args...)
	}
	code, _, stderr := runBinary(t, "-interpreters", "-1", "-dir", testdata, "-app", "hello")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "-interpreters must not be negative")

	code, stdout, _ := runBinary(t, "-version")
	require.Equal(t, 0, code)
	version := strings.Fields(stdout)[1] // "Python 3.11.2 (main, ..."
	parts := strings.Split(version, ".")
	minor, err := strconv.Atoi(parts[1])
	require.NoError(t, err)

	if minor < 13 {
		code, _, stderr = runBinary(t, "-addr", "127.0.0.1:0", "-interpreters", "2", "-dir", testdata, "-app", "hello")
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "Interpreters 2 needs Python 3.13 or later")
		assert.Contains(t, stderr, "links Python 3."+parts[1])
		return
	}
	p := startCmd(t, exec.Command(bin, "-addr", "127.0.0.1:0", "-interpreters", "2", "-dir", testdata, "-app", "hello"))
	status, body := get(t, "http://"+p.addr(t)+"/x")
	assert.Equal(t, 200, status)
	assert.Equal(t, "hello script_name='' path_info='/x'\n", body)
	assert.Equal(t, 0, p.stop(t))
}

// buildTags is the -tags this test binary was built with.
func buildTags() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" {
				return s.Value
			}
		}
	}
	return ""
}
