package wsgi

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options.RequestTimeout for WSGI apps: the Python part of the request
// runs on a goroutine of its own (runPython), so that ServeHTTP can answer
// 504 on time whatever Python is doing. Python is then interrupted with an
// asynchronous exception (it fires when the thread next runs Python
// bytecode, not inside a C call such as time.sleep), and the request keeps
// its Python slot until Python gives it back. The ResponseWriter and the
// request body are guarded so that the late Python goroutine can never
// touch them after ServeHTTP returned.

var errTimedOut = errors.New("wsgi: the request timed out")

// guardedWriter is the ResponseWriter the Python goroutine writes to. Once
// the request timed out, it refuses everything.
type guardedWriter struct {
	w        http.ResponseWriter
	ctrl     *http.ResponseController
	mu       sync.Mutex
	timedOut bool
	wrote    bool        // the head was written
	status   int         // the status written, once wrote
	header   http.Header // what Header returns after the timeout
}

func newGuardedWriter(w http.ResponseWriter) *guardedWriter {
	return &guardedWriter{w: w, ctrl: http.NewResponseController(w)}
}

func (g *guardedWriter) Header() http.Header {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timedOut {
		if g.header == nil {
			g.header = make(http.Header)
		}
		return g.header
	}
	return g.w.Header()
}

func (g *guardedWriter) WriteHeader(code int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.timedOut {
		if code >= 200 { // after 103 Early Hints a 504 is still possible
			if !g.wrote {
				g.status = code
			}
			g.wrote = true
		}
		g.w.WriteHeader(code)
	}
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timedOut {
		return 0, errTimedOut
	}
	g.writing()
	return g.w.Write(p)
}

// ReadFrom keeps sendfile for wsgi.file_wrapper.
func (g *guardedWriter) ReadFrom(r io.Reader) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timedOut {
		return 0, errTimedOut
	}
	g.writing()
	if rf, ok := g.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{g.w}, r)
}

// The methods http.ResponseController looks for, so that it never
// unwraps past the guard.

func (g *guardedWriter) FlushError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timedOut {
		return errTimedOut
	}
	return g.ctrl.Flush()
}

func (g *guardedWriter) EnableFullDuplex() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timedOut {
		return errTimedOut
	}
	return g.ctrl.EnableFullDuplex()
}

func (g *guardedWriter) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timedOut {
		return errTimedOut
	}
	return g.ctrl.SetReadDeadline(t)
}

func (g *guardedWriter) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timedOut {
		return errTimedOut
	}
	return g.ctrl.SetWriteDeadline(t)
}

func (g *guardedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

// writing records a body write: the head goes first, 200 if none was
// written.
func (g *guardedWriter) writing() {
	if !g.wrote {
		g.status = http.StatusOK
	}
	g.wrote = true
}

// timeOut closes the guard and reports the status written, or 0 if the
// head had not been written.
func (g *guardedWriter) timeOut() (status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.timedOut = true
	return g.status
}

// guardedBody is the request body the Python goroutine reads. A timeout
// ends a read in progress (a read deadline in the past) and refuses later
// ones.
type guardedBody struct {
	r        io.Reader
	inRead   atomic.Int32
	timedOut atomic.Bool
}

func (b *guardedBody) Read(p []byte) (int, error) {
	b.inRead.Add(1)
	defer b.inRead.Add(-1)
	if b.timedOut.Load() {
		return 0, errTimedOut
	}
	return b.r.Read(p)
}

// timeOut stops reads: it waits (briefly) until none is in progress.
func (b *guardedBody) timeOut(ctrl *http.ResponseController) {
	b.timedOut.Store(true)
	_ = ctrl.SetReadDeadline(time.Unix(1, 0))
	for i := 0; i < 200 && b.inRead.Load() > 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
}
