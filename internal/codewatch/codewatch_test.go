package codewatch

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A burst of writes to .py files is one change naming the first; other
// files and left-out directories change nothing; new directories are
// watched.
func TestRun(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(root, "__pycache__"), 0o755))
	cw, err := New()
	require.NoError(t, err)
	require.NoError(t, cw.Add(root))
	stop := make(chan struct{})
	changed := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cw.Run(stop, func(err error) { t.Error(err) }, func(f string) { changed <- f })
	}()
	defer func() { close(stop); <-done }()

	write := func(p string) { require.NoError(t, os.WriteFile(filepath.Join(root, p), []byte("x = 1\n"), 0o644)) }
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-changed:
			assert.Equal(t, filepath.Join(root, want), got)
		case <-time.After(5 * time.Second):
			t.Fatalf("no change reported for %s", want)
		}
	}
	quiet := func() {
		t.Helper()
		select {
		case got := <-changed:
			t.Fatalf("unexpected change %s", got)
		case <-time.After(3 * Delay):
		}
	}

	write("a.py")
	write("b.py")
	expect("a.py")
	quiet() // one burst, one change
	write("notes.txt")
	write("__pycache__/a.cpython-311.py")
	quiet()
	require.NoError(t, os.Mkdir(filepath.Join(root, "pkg"), 0o755))
	time.Sleep(2 * Delay) // the new directory is added from its Create event
	write("pkg/mod.py")
	expect("pkg/mod.py")
}
