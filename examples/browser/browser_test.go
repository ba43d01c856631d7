package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi/config"
	"github.com/gowsgi/wsgi/internal/browsertest"
)

// TestBrowserDjangoAdmin logs into the Django admin under /django/ in
// headless Chromium, adds a Post there, then finds it in /django/posts,
// the JSON API.
func TestBrowserDjangoAdmin(t *testing.T) {
	if os.Getenv("WSGI_TEST_STDLIB_ONLY") != "" {
		t.Skip("WSGI_TEST_STDLIB_ONLY: Django exists only for the system Python")
	}
	chromium := browsertest.FindChromium(t)

	const user, password = "browser-admin", "browser-secret-123"
	// Read by the Django app when it is imported (the interpreter starts
	// then, with this environment): a fresh database and superuser.
	t.Setenv("DEMO_DATA_DIR", t.TempDir())
	t.Setenv("DEMO_ADMIN_USER", user)
	t.Setenv("DEMO_ADMIN_PASSWORD", password)

	cfg, err := config.Load("../apps.toml")
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := config.NewServer(cfg, logger, nil)
	require.NoError(t, err, "%+v", err)
	t.Cleanup(func() { _ = srv.Close() })
	ts := httptest.NewServer(srv) // 127.0.0.1: in Django's ALLOWED_HOSTS
	t.Cleanup(ts.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := browsertest.NewAllocator(ctx, t, chromium, 1280, 900)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	title := fmt.Sprintf("Written in Chromium %d", time.Now().UnixNano())
	const content = "Typed into the Django admin by a headless browser."

	// /django/admin/ sends us to the login form.
	require.NoError(t, chromedp.Do(browser,
		chromedp.Navigate(ts.URL+"/django/admin/"),
		chromedp.WaitVisible(chromedp.CSS(`#id_username`)),
	))
	// The admin's stylesheet, served by Go from the collected files, is
	// loaded and applied.
	loginCSS, err := chromedp.Run(browser, chromedp.Evaluate[bool](`Array.from(document.styleSheets).some(s =>
		s.href && s.href.endsWith("/django/static/admin/css/base.css") && s.cssRules.length > 0)`))
	require.NoError(t, err)
	assert.True(t, loginCSS, "base.css not loaded on the login page")

	require.NoError(t, chromedp.Do(browser,
		chromedp.SendKeys(chromedp.CSS(`#id_username`), user),
		chromedp.SendKeys(chromedp.CSS(`#id_password`), password),
		chromedp.Click(chromedp.CSS(`#login-form input[type=submit]`)),
		// The admin index: Blog > Posts > Add.
		chromedp.WaitVisible(chromedp.CSS(`#content-main`)),
		chromedp.Click(chromedp.CSS(`a.addlink[href="/django/admin/blog/post/add/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#id_title`)),
		chromedp.SendKeys(chromedp.CSS(`#id_title`), title),
		chromedp.SendKeys(chromedp.CSS(`#id_content`), content),
		chromedp.Click(chromedp.CSS(`input[name="_save"]`)),
		// Saved: back on the list of posts, with a success message.
		chromedp.WaitVisible(chromedp.CSS(`ul.messagelist li.success`)),
	))
	message, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`ul.messagelist li.success`)))
	require.NoError(t, err)
	assert.Contains(t, message, title)
	afterSave, err := chromedp.Run(browser, chromedp.Location())
	require.NoError(t, err)
	assert.Equal(t, ts.URL+"/django/admin/blog/post/", afterSave)

	// The JSON API has the post.
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(ts.URL+"/django/posts")))
	body, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`body`)))
	require.NoError(t, err)
	var posts []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Content string `json:"content"`
	}
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(body)), &posts), "body: %s", body)
	var found bool
	for _, p := range posts {
		if p.Title == title {
			found = true
			assert.NotZero(t, p.ID)
			assert.Equal(t, content, p.Content)
		}
	}
	assert.True(t, found, "post %q not in /django/posts: %s", title, body)
}
