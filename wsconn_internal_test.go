package wsgi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/gobwas/ws/wsflate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzWSReadMessage feeds any bytes to the server side of a connection,
// with permessage-deflate and context takeover or without: no panic, no
// message past the limit, and every read ends in a message or an error
// that ends the connection (the
// client's close, a failure with its close code, or the input's end).
func FuzzWSReadMessage(f *testing.F) {
	mask := func(op byte, payload []byte) []byte {
		b := []byte{op, 0x80 | byte(len(payload)), 1, 2, 3, 4}
		for i, p := range payload {
			b = append(b, p^[]byte{1, 2, 3, 4}[i%4])
		}
		return b
	}
	f.Add(mask(0x81, []byte("hello")), false)
	f.Add(append(mask(0x01, []byte("hel")), mask(0x80, []byte("lo"))...), false)
	f.Add(mask(0xc1, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), true) // "hello", deflated
	f.Add(append(mask(0x89, []byte("ping")), mask(0x88, []byte{3, 232})...), true)
	f.Add(mask(0xc2, []byte{0x4b, 0x4c, 0x1c, 0x05, 0xa3, 0x60, 0x14, 0x0c, 0x77, 0x00, 0x00}), false) // a bomb
	const limit = 4096
	f.Fuzz(func(t *testing.T, in []byte, takeover bool) {
		server, client := net.Pipe()
		defer client.Close()
		go func() { _, _ = io.Copy(io.Discard, client) }() // pongs and close frames
		params := &wsflate.Parameters{ServerNoContextTakeover: !takeover, ClientNoContextTakeover: !takeover}
		c := newWSConn(server, bytes.NewReader(in), params, limit)
		for range len(in) + 1 {
			_, data, err := c.ReadMessage(nil)
			if err != nil {
				var ce *wsCloseError
				var fe *wsFailure
				if !errors.As(err, &ce) && !errors.As(err, &fe) && !errors.Is(err, io.EOF) {
					require.ErrorIs(t, err, io.ErrUnexpectedEOF, "%T %v", err, err) // the input ended in a frame
				}
				return
			}
			assert.LessOrEqual(t, len(data), limit)
		}
		t.Fatal("more messages than bytes")
	})
}
