package wsgi

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// accessWriter records what went out, for the access log. It keeps
// http.ResponseController (Unwrap) and sendfile (ReadFrom) working.
type accessWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (a *accessWriter) WriteHeader(code int) {
	if a.status == 0 && code >= 200 { // 1xx (Early Hints) is not the answer
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *accessWriter) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	n, err := a.ResponseWriter.Write(p)
	a.bytes += int64(n)
	return n, err
}

func (a *accessWriter) ReadFrom(r io.Reader) (int64, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := a.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{a.ResponseWriter}, r)
	}
	a.bytes += n
	return n, err
}

func (a *accessWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// Hijack is passed through for the rare app stack that needs it.
func (a *accessWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(a.ResponseWriter).Hijack()
}

// logAccess writes one access log record. It runs deferred, so aborted
// responses (http.ErrAbortHandler panics) are logged too.
func (h *Handler) logAccess(a *accessWriter, r *http.Request, start time.Time) {
	aborted := false
	if p := recover(); p != nil {
		aborted = true
		defer panic(p)
	}
	status := a.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("uri", r.RequestURI),
		slog.Int("status", status),
		slog.Int64("bytes", a.bytes),
		slog.Duration("duration", time.Since(start)),
		slog.String("remote", r.RemoteAddr),
	}
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	h.cfg.logger.LogAttrs(r.Context(), slog.LevelInfo, "wsgi: access", attrs...)
}
