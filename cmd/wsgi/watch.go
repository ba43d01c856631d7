package main

import (
	"log/slog"

	"github.com/gowsgi/wsgi/internal/codewatch"
)

// With workers, -reload and -debug restart the workers (a rolling
// restart) when a .py file under an app directory changes, rather than
// re-import in each worker: a new process works for every framework. The
// watching is the library's (internal/codewatch): the same directories
// left out, the same delay to gather one save's events.

// watchCode reports on the returned channel the first .py file changed
// under dirs after a quiet codewatch.Delay, until done is closed. It
// returns nil if there is nothing to watch.
func watchCode(logger *slog.Logger, dirs []string, done <-chan struct{}) <-chan string {
	if len(dirs) == 0 {
		return nil
	}
	cw, err := codewatch.New()
	if err != nil {
		logger.Error("wsgi: cannot watch the app directories; reload is off", "err", err)
		return nil
	}
	for _, dir := range dirs {
		if err := cw.Add(dir); err != nil {
			logger.Error("wsgi: cannot watch an app directory; reload is off for it", "dir", dir, "err", err)
		}
	}
	changed := make(chan string)
	go cw.Run(done,
		func(err error) { logger.Warn("wsgi: watching the app directories", "err", err) },
		func(file string) {
			select {
			case changed <- file:
			case <-done:
			}
		})
	return changed
}
