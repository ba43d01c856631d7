package wsgi

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// statusWriter records the status and body bytes that went out: for the
// access log, and for the metrics of the responses written by others than
// the exchanges (static files, WebSocket handshakes). It keeps
// http.ResponseController (Unwrap), sendfile (ReadFrom) and Hijack
// working.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	// An interim 1xx (Early Hints) is not the answer; 101 ends the
	// exchange (a WebSocket).
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{s.ResponseWriter}, r)
	}
	s.bytes += n
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// hijacked records the status of a response written on the hijacked
// connection (a WebSocket handshake).
func (s *statusWriter) hijacked(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(s.ResponseWriter).Hijack()
}
