// Package browsertest finds the headless browser that the browser tests
// (the demo's, the live view's) drive.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
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

// NewAllocator starts headless Chromium (path from FindChromium) with a
// window of w x h pixels and a profile of its own. The machine may have no
// network: without these flags Chromium stalls on its background requests.
func NewAllocator(ctx context.Context, t *testing.T, chromium string, w, h int) (context.Context, context.CancelFunc) {
	return chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(w, h),
	)
}
