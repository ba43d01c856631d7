package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	kflate "github.com/klauspost/compress/flate"
)

// The WebSocket benchmark's client. A load generator must cost the server's
// CPU nothing it would not cost anyway, and must not become the bottleneck:
// coder/websocket compressing each message with compress/flate took 85-95%
// of the client's CPU, and in compressed runs left the server waiting for
// messages (0.2-1.0 epoll_pwait and up to 0.6 context switches a message,
// against 0.1 and 0.03 uncompressed). So, as h2load sends requests built
// once, each of the 64 messages is deflated once (by compress/flate at
// BestSpeed, the bytes coder/websocket sent) and masked afresh for each
// send; each echo is inflated and compared with the message.

// wsTail ends a message's deflate data: the empty stored block the sender
// removed (RFC 7692 §7.2.2), then a final empty block.
var wsTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// deflateMessage is msg as a permessage-deflate payload without context
// takeover.
func deflateMessage(msg string) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write([]byte(msg))
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), wsTail[:4])
}

type wsClient struct {
	conn    net.Conn
	br      *bufio.Reader
	deflate bool // permessage-deflate negotiated
	out     bytes.Buffer
	in      []byte
	text    bytes.Buffer
	src     bytes.Reader
	fr      io.ReadCloser
}

// dialWS connects to ws://addr/, offering permessage-deflate without
// context takeover, as the benchmark's coder/websocket client did.
func dialWS(ctx context.Context, addr string) (*wsClient, error) {
	offer := wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
	d := ws.Dialer{Extensions: []httphead.Option{offer.Option()}}
	conn, br, hs, err := d.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 4096)
	}
	c := &wsClient{conn: conn, br: br, fr: kflate.NewReader(nil)}
	for _, e := range hs.Extensions {
		c.deflate = c.deflate || bytes.Equal(e.Name, wsflate.ExtensionNameBytes)
	}
	return c, nil
}

// echo sends msg as a text message (payload, its deflated form, if
// deflate was negotiated) and checks the server's answer is msg.
func (c *wsClient) echo(msg string, deflated []byte) error {
	payload := []byte(msg)
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true}
	if c.deflate {
		payload, h.Rsv = deflated, ws.Rsv(true, false, false)
	}
	h.Length = int64(len(payload))
	binary.LittleEndian.PutUint32(h.Mask[:], rand.Uint32())
	c.out.Reset()
	if err := ws.WriteHeader(&c.out, h); err != nil {
		return err
	}
	start := c.out.Len()
	c.out.Write(payload)
	ws.Cipher(c.out.Bytes()[start:], h.Mask, 0)
	if _, err := c.conn.Write(c.out.Bytes()); err != nil {
		return err
	}

	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return err
	}
	if h.OpCode != ws.OpText || !h.Fin || h.Masked {
		return fmt.Errorf("unexpected frame from the server: %+v", h)
	}
	c.in = append(c.in[:0], make([]byte, h.Length)...)
	if _, err := io.ReadFull(c.br, c.in); err != nil {
		return err
	}
	got := c.in
	if r1, _, _ := ws.RsvBits(h.Rsv); r1 {
		c.src.Reset(append(c.in, wsTail...))
		if err := c.fr.(kflate.Resetter).Reset(&c.src, nil); err != nil {
			return err
		}
		c.text.Reset()
		if _, err := c.text.ReadFrom(c.fr); err != nil {
			return err
		}
		got = c.text.Bytes()
	}
	if string(got) != msg {
		return errors.New("echo differs from the message sent")
	}
	return nil
}

func (c *wsClient) close() {
	var b bytes.Buffer
	f := ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	_ = ws.WriteFrame(&b, f)
	_, _ = c.conn.Write(b.Bytes())
	_ = c.conn.Close()
}
