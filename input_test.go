package wsgi

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bytesIO is io.BytesIO's read and readline, the model wsgi.input must
// match.
type bytesIO struct {
	data []byte
	pos  int
}

func (b *bytesIO) read(n int64) []byte {
	rest := b.data[b.pos:]
	if n >= 0 && int64(len(rest)) > n {
		rest = rest[:n]
	}
	b.pos += len(rest)
	return rest
}

func (b *bytesIO) readline(limit int64) []byte {
	rest := b.data[b.pos:]
	if limit >= 0 && int64(len(rest)) > limit {
		rest = rest[:limit]
	}
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i+1]
	}
	b.pos += len(rest)
	return rest
}

// chunkReader hands out data in reads of the sizes in splits (cycled).
type chunkReader struct {
	data   []byte
	splits []byte
	i      int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.splits) > 0 {
		n = int(c.splits[c.i%len(c.splits)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// runOps replays ops (pairs of bytes: kind, size) on both readers and
// reports the first difference. Reads of directMin bytes or more go into
// the caller's memory, as exchange.Read and Take do them.
func runOps(t *testing.T, body, splits, ops []byte, declared bool, directMin int) {
	t.Helper()
	left := int64(-1)
	if declared {
		left = int64(len(body))
	}
	got := &bodyReader{src: &chunkReader{data: body, splits: splits}, left: left, directMin: directMin}
	want := &bytesIO{data: body}
	for i := 0; i+1 < len(ops); i += 2 {
		n := int64(ops[i+1]) - 64 // negative sizes mean "all"
		if ops[i+1] == 255 {
			n = 1 << 40 // far more than there is
		}
		var g, w []byte
		var err error
		if ops[i]%2 == 0 {
			if d := got.direct(n); d > 0 {
				g = make([]byte, d)
				var k int
				k, err = got.readFull(g)
				g = g[:k]
			} else {
				g, err = got.read(n)
			}
			w = want.read(n)
		} else {
			g, err = got.readline(n)
			w = want.readline(n)
		}
		require.NoError(t, err)
		require.Equal(t, string(w), string(g), "op %d (%d, %d)", i/2, ops[i]%2, n)
	}
}

func TestBodyReaderMatchesBytesIO(t *testing.T) {
	bodies := [][]byte{nil, []byte("a"), []byte("one\ntwo\n\nthree"), bytes.Repeat([]byte("x\n"), 5000)}
	opsList := [][]byte{
		{0, 63}, // read all (-1)
		{0, 64, 0, 65, 0, 67, 0, 255, 0, 64},
		{1, 63, 1, 63, 1, 63, 1, 63},
		{1, 64, 1, 65, 1, 66, 1, 200, 0, 63},
		{0, 68, 1, 63, 0, 255, 1, 63},
	}
	for _, body := range bodies {
		for _, ops := range opsList {
			for _, splits := range [][]byte{nil, {0}, {2, 6, 200}} {
				for _, direct := range []int{0, 1, 3, directMin} {
					runOps(t, body, splits, ops, true, direct)
					runOps(t, body, splits, ops, false, direct)
				}
			}
		}
	}
}

func TestBodyReaderDoesNotAllocateTheAskedSize(t *testing.T) {
	b := &bodyReader{src: bytes.NewReader([]byte("0123456789")), left: 10}
	p, err := b.read(1 << 40)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(p))
	assert.Less(t, cap(b.buf), 1<<16, "the buffer is sized by what arrives, not by what was asked")
}

// FuzzBodyReader: any body, any split on the wire, any sequence of read
// and readline sizes gives what io.BytesIO gives on the same bytes.
func FuzzBodyReader(f *testing.F) {
	f.Add([]byte("line one\nline two\n"), []byte{0, 3}, []byte{1, 63, 0, 66, 1, 70, 0, 63}, true, uint8(4))
	f.Add([]byte(""), []byte{}, []byte{0, 255, 1, 63}, false, uint8(1))
	f.Add(bytes.Repeat([]byte("ab\n"), 100), []byte{7}, []byte{1, 65, 1, 65, 0, 200}, false, uint8(0))
	f.Fuzz(func(t *testing.T, body, splits, ops []byte, declared bool, directMin uint8) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		runOps(t, body, splits, ops, declared, int(directMin))
	})
}
