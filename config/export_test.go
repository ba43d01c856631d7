package config

import "github.com/gowsgi/wsgi"

// SetNewHandler replaces how NewServer builds a handler, for a test; the
// returned function restores it. Tests that use it must not run in
// parallel.
func SetNewHandler(f func(wsgi.Options) (*wsgi.Handler, error)) (restore func()) {
	old := newHandler
	newHandler = f
	return func() { newHandler = old }
}
