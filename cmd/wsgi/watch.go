package main

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// With workers, -reload and -debug restart the workers (a rolling
// restart) when a .py file under an app directory changes, rather than
// re-import in each worker: a new process works for every framework. The
// watching mirrors the library's (reload.go): the same directories left
// out, the same delay to gather one save's events.

// changeDelay gathers the events of one save into one restart.
const changeDelay = 150 * time.Millisecond

// watchCode reports on the returned channel the first .py file changed
// under dirs after a quiet changeDelay, until done is closed. It returns
// nil if there is nothing to watch.
func watchCode(logger *slog.Logger, dirs []string, done <-chan struct{}) <-chan string {
	if len(dirs) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		logger.Error("wsgi: cannot watch the app directories; reload is off", "err", err)
		return nil
	}
	for _, dir := range dirs {
		if err := addCodeTree(w, dir); err != nil {
			logger.Error("wsgi: cannot watch an app directory; reload is off for it", "dir", dir, "err", err)
		}
	}
	changed := make(chan string)
	go func() {
		defer w.Close()
		var fire <-chan time.Time
		var first string
		for {
			select {
			case <-done:
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Has(fsnotify.Create) {
					if st, err := os.Stat(ev.Name); err == nil && st.IsDir() && codeDir(ev.Name) {
						_ = addCodeTree(w, ev.Name)
					}
				}
				if !strings.HasSuffix(ev.Name, ".py") {
					continue
				}
				if first == "" {
					first = ev.Name
				}
				fire = time.After(changeDelay)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				logger.Warn("wsgi: watching the app directories", "err", err)
			case <-fire:
				fire = nil
				select {
				case changed <- first:
				case <-done:
					return
				}
				first = ""
			}
		}
	}()
	return changed
}

// codeDir leaves out directories that hold no app code.
func codeDir(dir string) bool {
	base := filepath.Base(dir)
	if strings.HasPrefix(base, ".") || base == "__pycache__" || base == "node_modules" {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "pyvenv.cfg")) // a virtualenv
	return err != nil
}

func addCodeTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != root && !codeDir(p) {
			return filepath.SkipDir
		}
		return w.Add(p)
	})
}
