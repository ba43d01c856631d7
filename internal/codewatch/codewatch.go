// Package codewatch reports changes to the Python files under directory
// trees, one burst of events (one save) at a time: for the library's
// in-process reload and for the command's restart of its workers.
package codewatch

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Delay gathers the events of one save (editors write, rename and chmod
// in a burst) into one change.
const Delay = 150 * time.Millisecond

// Watcher watches directory trees of Python code.
type Watcher struct{ w *fsnotify.Watcher }

// New returns a Watcher that watches nothing yet.
func New() (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &Watcher{w: w}, nil
}

// Add watches root and the directories under it that may hold app code.
func (cw *Watcher) Add(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != root && !codeDir(p) {
			return filepath.SkipDir
		}
		return cw.w.Add(p)
	})
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

// Close stops watching; Run returns.
func (cw *Watcher) Close() error { return cw.w.Close() }

// Run calls changed with the first .py file changed once a burst of
// changes is over (Delay without another), and warn with the watcher's
// errors, until stop is closed. New directories are watched as they
// appear. It closes the Watcher when it returns.
func (cw *Watcher) Run(stop <-chan struct{}, warn func(error), changed func(file string)) {
	defer cw.w.Close()
	var timer *time.Timer
	var fire <-chan time.Time
	var first string
	for {
		select {
		case <-stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-cw.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() && codeDir(ev.Name) {
					_ = cw.Add(ev.Name)
				}
			}
			if !strings.HasSuffix(ev.Name, ".py") {
				continue
			}
			if first == "" {
				first = ev.Name
			}
			if timer == nil {
				timer = time.NewTimer(Delay)
			} else {
				timer.Reset(Delay)
			}
			fire = timer.C
		case err, ok := <-cw.w.Errors:
			if !ok {
				return
			}
			warn(err)
		case <-fire:
			fire = nil
			file := first
			first = ""
			changed(file)
		}
	}
}
