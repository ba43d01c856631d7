package debugview_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi/debugview"
	"github.com/gowsgi/wsgi/internal/browsertest"
)

// TestBrowserLiveView opens the live view in headless Chromium while two
// requests linger in the app and a third waits for a thread: a person sees
// one row per request, the lingering function in each stack, the queued
// one marked queued, and a path full of markup as plain text. Once the
// requests end, the page has reloaded itself to say so. The screenshot is
// liveview.png in the test's artifact directory (go test -artifacts keeps
// it, under -outputdir; the test logs the path).
func TestBrowserLiveView(t *testing.T) {
	chromium := browsertest.FindChromium(t)
	h := newHandler(t, "liveview", "wsgi") // 2 threads
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("/debug/wsgi/", debugview.New(debugview.Local(0, h)))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := browsertest.NewAllocator(ctx, t, chromium, 1400, 900)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	// The browser first (it may take seconds to start on a loaded
	// machine), then the requests, then the page.
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate("about:blank")))
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i, path := range []string{"/linger/first?3", "/linger/%3Cb%3Ebold%3C%2Fb%3E?3", "/linger/queued?0.1"} {
		wg.Go(func() {
			if resp, err := http.Get(ts.URL + path); err == nil {
				_ = resp.Body.Close()
			}
		})
		require.True(t, waitFor(5*time.Second, func() bool { return len(h.Snapshot().Requests) == i+1 }), "in this order")
	}
	require.NoError(t, chromedp.Do(browser,
		chromedp.Navigate(ts.URL+"/debug/wsgi/"),
		chromedp.WaitVisible(chromedp.CSS(`tr.request`)),
	))
	rows, err := chromedp.Run(browser, chromedp.Evaluate[[]map[string]string](`Array.from(document.querySelectorAll("tr.request")).map(r => ({
		path: r.querySelector(".path").innerText,
		state: r.querySelector(".state").innerText,
		stack: r.cells[5].innerText,
	}))`))
	require.NoError(t, err)
	require.Len(t, rows, 3, "%v", rows)
	byPath := map[string]map[string]string{}
	for _, r := range rows {
		byPath[r["path"]] = r
	}
	for _, path := range []string{"/linger/first", "/linger/<b>bold</b>"} {
		r := byPath[path]
		require.NotNil(t, r, "a row shows %q: %v", path, rows)
		assert.Equal(t, "in python", r["state"])
		assert.Contains(t, r["stack"], "in linger_in_wsgi_view")
		assert.Contains(t, r["stack"], "released.wait(seconds)", "the source line")
	}
	require.NotNil(t, byPath["/linger/queued"], "%v", rows)
	assert.Equal(t, "queued", byPath["/linger/queued"]["state"])
	assert.Equal(t, "no Python running", byPath["/linger/queued"]["stack"])
	bold, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll("b").length`))
	require.NoError(t, err)
	assert.Zero(t, bold, "the path's markup is text, not elements")
	summary, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`p.muted`)))
	require.NoError(t, err)
	assert.Contains(t, summary, "3 in progress")

	shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100)) // 100: PNG
	require.NoError(t, err)
	file := filepath.Join(t.ArtifactDir(), "liveview.png")
	require.NoError(t, os.WriteFile(file, shot, 0o644))
	t.Logf("screenshot: %s", file)

	// The requests end; the page reloads itself (every 2 s) to say so.
	require.NoError(t, chromedp.Do(browser, chromedp.WaitVisible(chromedp.CSS(`p.none`))))
	text, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`p.none`)))
	require.NoError(t, err)
	assert.Equal(t, "No request in progress.", text)
}
