// Package browsertest finds the headless browser that the browser tests
// (the demo's, the live view's) drive.
package browsertest

import (
	"os"
	"os/exec"
	"testing"
)

// FindChromium returns the browser's path. Without one the test skips,
// unless WSGI_BROWSER_TEST=1 asks for it (make browser-test), which makes
// a missing browser a failure.
func FindChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("WSGI_BROWSER_TEST") == "1" {
		t.Fatal("WSGI_BROWSER_TEST=1 but no chromium on PATH: apt-get install chromium (make browser-test does)")
	}
	t.Skip("no chromium on PATH (make browser-test installs it and runs this test)")
	return ""
}
