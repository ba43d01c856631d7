package wsgi

import (
	"log/slog"
	"net/http"
	"time"
)

// logAccess writes one access log record. It runs deferred, so aborted
// responses (http.ErrAbortHandler panics) are logged too.
func (h *Handler) logAccess(a *statusWriter, r *http.Request, start time.Time) {
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
