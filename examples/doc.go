// Package examples holds the demo served by `make run`: a Flask app
// (flaskapp/) and a Django app (djangoapp/) with the same JSON API of posts
// and comments on SQLite, mounted at /flask/ and /django/ by apps.toml.
// See README.md. The package has no Go code of its own: its tests check
// both apps' APIs in process, and examples/browser drives the Django admin
// in headless Chromium.
package examples
