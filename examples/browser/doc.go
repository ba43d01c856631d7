// Package browser tests the demo of ../apps.toml in a real browser: its
// test drives headless Chromium (chromedp) through the Django admin. Run it
// with `make browser-test`, which installs Debian's chromium when missing.
// Without chromium the test skips, unless WSGI_BROWSER_TEST=1 (set by the
// make target), in which case it fails.
package browser
