package wsgi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// bodyReader gives wsgi.input the semantics of io.BytesIO over a body that
// arrives from the network: read(n) returns n bytes unless the body ends
// first, readline stops after "\n". It buffers only what an operation
// needs, never the whole body unless the app asks for all of it, and never
// allocates a size the app asked for before the bytes exist.
type bodyReader struct {
	src   io.Reader
	buf   []byte // buf[start:] is read from src but not yet returned
	start int
	eof   bool
	err   error // sticky: once the body failed, every read fails
	left  int64 // declared bytes not yet read from src; -1 if unknown (chunked)
	got   int64 // bytes read from src, for the metrics

	touched bool // src was read at least once

	// directMin is the smallest read(n) that direct offers to put straight
	// into the caller's memory; zero means never.
	directMin int

	// timeout bounds each read from src (Options.BodyReadTimeout) through
	// setDeadline; zero means no bound.
	timeout     time.Duration
	setDeadline func(time.Time) error
	stalled     bool // a read timed out
}

const (
	minFill = 4 << 10
	maxFill = 1 << 20

	// directMin is where reading into the app's bytes object pays: below
	// it one buffered read, which may also serve the next readline, costs
	// less than a second crossing with the GIL released.
	directMin = 16 << 10
)

// direct says whether read(n) may skip the buffer: it returns how many
// bytes the result will hold when they can be read from src straight into
// the caller's memory with readFull, or 0. That is when nothing is
// buffered and the declared body holds them, and no more than maxFill,
// because the caller allocates the result before the bytes arrive.
func (b *bodyReader) direct(n int64) int {
	if b.directMin == 0 || b.err != nil || b.eof || b.buffered() > 0 || b.left <= 0 {
		return 0
	}
	k := b.left
	if n >= 0 {
		k = min(n, k)
	}
	if k < int64(b.directMin) || k > maxFill {
		return 0
	}
	return int(k)
}

// readFull is the second half of a read that direct allowed: it reads
// len(p) bytes from src into p, fewer only if the body ends first.
func (b *bodyReader) readFull(p []byte) (int, error) {
	got := 0
	for got < len(p) && !b.eof {
		n, err := b.readSrc(p[got:])
		got += n
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// read returns up to n bytes (all remaining when n < 0). The result
// aliases the reader's buffer and is valid until the next call.
func (b *bodyReader) read(n int64) ([]byte, error) {
	if n == 0 {
		return nil, b.err
	}
	for !b.eof && (n < 0 || int64(b.buffered()) < n) {
		want := minFill
		switch {
		case n > 0:
			want = int(min(n-int64(b.buffered()), maxFill))
		case b.left > 0:
			// All of a declared body: room for it at once, rather than a
			// buffer doubled from 4 KiB.
			want = int(min(b.left, maxFill))
		}
		if err := b.fill(want); err != nil {
			return nil, err
		}
	}
	k := b.buffered()
	if n >= 0 && int64(k) > n {
		k = int(n)
	}
	return b.take(k), nil
}

// readline returns one line including its "\n", or fewer bytes when limit
// (if >= 0) or the end of the body comes first.
func (b *bodyReader) readline(limit int64) ([]byte, error) {
	if limit == 0 {
		return nil, b.err
	}
	scanned := 0
	for {
		avail := b.buf[b.start:]
		if limit >= 0 && int64(len(avail)) > limit {
			avail = avail[:limit]
		}
		if i := bytes.IndexByte(avail[scanned:], '\n'); i >= 0 {
			return b.take(scanned + i + 1), nil
		}
		scanned = len(avail)
		if b.eof || (limit >= 0 && int64(scanned) >= limit) {
			return b.take(scanned), nil
		}
		if err := b.fill(minFill); err != nil {
			return nil, err
		}
	}
}

func (b *bodyReader) buffered() int { return len(b.buf) - b.start }

// take hands out the next k buffered bytes.
func (b *bodyReader) take(k int) []byte {
	p := b.buf[b.start : b.start+k]
	b.start += k
	return p
}

// fill reads at least one more byte from src into the buffer, or sets eof.
func (b *bodyReader) fill(want int) error {
	if b.err != nil {
		return b.err
	}
	if b.left == 0 {
		// The whole declared body is in: that is the end, without a
		// read (or a buffer) to find out.
		b.eof = true
		return nil
	}
	want = max(want, minFill)
	if b.left >= 0 {
		// Never make room for more than the client declared.
		want = int(min(int64(want), max(b.left, 1)))
	}
	if b.start > 0 && b.start == len(b.buf) {
		b.buf, b.start = b.buf[:0], 0
	}
	if cap(b.buf)-len(b.buf) < want {
		// Move the unread bytes to the front of a buffer with room for
		// want more.
		unread := b.buffered()
		nb := b.buf[:0]
		if cap(b.buf) < unread+want || b.start == 0 {
			nb = make([]byte, 0, max(unread+want, 2*cap(b.buf)))
		}
		nb = append(nb, b.buf[b.start:]...)
		b.buf, b.start = nb, 0
	}
	for {
		n, err := b.readSrc(b.buf[len(b.buf) : len(b.buf)+want])
		b.buf = b.buf[:len(b.buf)+n]
		if err != nil || n > 0 || b.eof {
			return err
		}
	}
}

// readSrc reads once from src, within the per-read deadline, and keeps
// the accounting: left, eof at the end of the body, b.err (sticky) when
// the body fails.
func (b *bodyReader) readSrc(p []byte) (int, error) {
	b.touched = true
	if b.timeout > 0 && b.setDeadline != nil {
		// Per read, not per body: a slow but steady upload is fine.
		_ = b.setDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.src.Read(p)
	if b.timeout > 0 && b.setDeadline != nil {
		_ = b.setDeadline(time.Time{})
	}
	b.got += int64(n)
	if b.left >= 0 {
		b.left -= int64(n)
	}
	switch {
	case err == io.EOF || b.left == 0:
		// The whole declared body is in: that is the end, without a
		// read to find out.
		b.eof = true
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.stalled = true
		b.err = fmt.Errorf("wsgi: the client sent no request body data for %v", b.timeout)
	case err != nil:
		b.err = bodyError(err)
	}
	return n, b.err
}

// bodyError turns a failed body read into the message the app sees.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("wsgi: request body larger than the %d-byte limit", tooBig.Limit)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("wsgi: client closed the connection before sending the whole body")
	}
	return fmt.Errorf("wsgi: reading request body: %v", err)
}
