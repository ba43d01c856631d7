package main

import (
	crand "crypto/rand"
	be "encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

// Datagrams as the program sees them (the UDP payload).

func shortHeader(index byte) []byte {
	b := make([]byte, 40)
	_, _ = crand.Read(b)
	b[0] = 0x40 | b[0]&0x3f // fixed bit, no long header
	b[1] = index
	return b
}

// longHeader is a long-header packet whose destination ID is dcid.
func longHeader(typ byte, dcid []byte, size int) []byte {
	b := []byte{0xc0 | typ<<4, 0, 0, 0, 1, byte(len(dcid))}
	b = append(b, dcid...)
	b = append(b, 8, 1, 2, 3, 4, 5, 6, 7, 8) // source ID
	for len(b) < size {
		b = append(b, 0)
	}
	return b
}

func randomID(n int) []byte {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return b
}

func workerID(index byte) []byte {
	b := randomID(quicConnIDLen)
	b[0] = index
	return b
}

// bucketOf is the socket the program picks for a client-chosen ID.
func bucketOf(buckets []int, id []byte) int {
	return buckets[be.BigEndian.Uint32(id[:4])%uint32(len(buckets))]
}

func TestSteeringProgram(t *testing.T) {
	live := []int{1, 2, 3, 5} // 5 is stopping: not in the buckets
	buckets := rebalance(nil, []int{1, 2, 3})
	vm, err := bpf.NewVM(steeringProgram(live, buckets))
	require.NoError(t, err)
	run := func(b []byte) int {
		n, err := vm.Run(b)
		require.NoError(t, err)
		return n
	}
	initialID := randomID(8)
	longID := randomID(20)
	deadID := workerID(4)
	for _, tc := range []struct {
		name   string
		packet []byte
		want   int
	}{
		{"short header, a held index", shortHeader(2), 2},
		{"short header, a stopping worker's index", shortHeader(5), 5},
		{"short header, index 0 held by no one", append(shortHeader(0)[:1], 0, 9, 9, 9, 9, 9, 9, 9), bucketOf(buckets, []byte{0, 9, 9, 9})},
		{"short header, a gone worker's ID", append([]byte{0x41}, deadID...), bucketOf(buckets, deadID)},
		{"handshake packet to a worker's ID", longHeader(2, workerID(3), 100), 3},
		{"initial to a worker's ID", longHeader(0, workerID(5), 1200), 5},
		{"client's first initial", longHeader(0, initialID, 1200), bucketOf(buckets, initialID)},
		{"its 0-RTT packet", longHeader(1, initialID, 300), bucketOf(buckets, initialID)},
		{"an initial with a 20-byte ID", longHeader(0, longID, 1200), bucketOf(buckets, longID)},
		{"empty datagram", nil, buckets[0]},
		{"one byte", []byte{0x40}, buckets[0]},
		{"short header cut in its ID", []byte{0x40, 2, 1}, buckets[0]},
		{"long header cut before the ID length", []byte{0xc0, 0, 0, 0, 1}, buckets[0]},
		{"long header cut in a worker's ID", longHeader(2, workerID(3), 0)[:8], buckets[0]},
		{"long header with a 3-byte ID", longHeader(0, []byte{1, 2, 3}, 1200), buckets[0]},
		{"long header cut in a client's ID", longHeader(0, initialID, 0)[:8], buckets[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, run(tc.packet))
		})
	}

	// Whatever arrives goes to a socket a worker reads; never to 0 (held
	// by no one here), which a load past the end would return.
	for range 20000 {
		b := randomID(rand.IntN(1300))
		if len(b) > 0 && rand.IntN(2) == 0 {
			b[0] |= 0x80
			if len(b) > 5 {
				b[5] = byte(rand.IntN(22))
			}
		}
		assert.Contains(t, live, run(b), "% x", b)
	}
}

// No socket accepts yet (every worker is starting) or none is held.
func TestSteeringProgramWithoutBuckets(t *testing.T) {
	vm, err := bpf.NewVM(steeringProgram(nil, nil))
	require.NoError(t, err)
	n, err := vm.Run(longHeader(0, randomID(8), 1200))
	require.NoError(t, err)
	assert.Equal(t, -1, int(int32(n)), "past the group's end: the kernel's own hash")
	_, err = bpf.Assemble(steeringProgram(slices.Collect(func(yield func(int) bool) {
		for k := range maxQUICSockets {
			yield(k)
		}
	}), rebalance(nil, []int{0, 255})))
	assert.NoError(t, err, "the longest program assembles")
}

func TestRebalance(t *testing.T) {
	counts := func(b []int) map[int]int {
		c := map[int]int{}
		for _, k := range b {
			c[k]++
		}
		return c
	}
	moved := func(a, b []int) int {
		n := 0
		for i := range a {
			if a[i] != b[i] {
				n++
			}
		}
		return n
	}
	assert.Nil(t, rebalance(nil, nil))
	two := rebalance(nil, []int{0, 1})
	assert.Equal(t, map[int]int{0: 32, 1: 32}, counts(two))

	// A replacement joins: it takes its share, from both.
	three := rebalance(two, []int{0, 1, 2})
	assert.Equal(t, map[int]int{0: 22, 1: 21, 2: 21}, counts(three))
	assert.Equal(t, 21, moved(two, three), "only the newcomer's buckets moved")

	// The old worker leaves: only its buckets move.
	after := rebalance(three, []int{1, 2})
	assert.Equal(t, map[int]int{1: 32, 2: 32}, counts(after))
	assert.Equal(t, 22, moved(three, after))
	for i := range three {
		if three[i] != 0 {
			assert.Equal(t, three[i], after[i], "bucket %d", i)
		}
	}

	// The same workers: nothing moves.
	assert.Equal(t, after, rebalance(after, []int{2, 1}))
	assert.Equal(t, map[int]int{7: 64}, counts(rebalance(after, []int{7})))
}

// The kernel runs the program: each datagram reaches the socket the
// master meant, whatever the client's address. (Without the program,
// the kernel hashes the address: every datagram from one client port
// lands on one socket, whatever its ID names.)
func TestQUICSteeringKernel(t *testing.T) {
	t.Parallel()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcp.Close()
	q, err := newQUICSockets(slog.New(slog.NewTextHandler(io.Discard, nil)), []net.Addr{tcp.Addr()})
	require.NoError(t, err)
	defer q.close()

	// Four workers: 0 and 1 serve, 2 is stopping, 3 has exited.
	workers := make([]*worker, 4)
	conns := make([]net.PacketConn, 4)
	for k := range workers {
		i, socks, keys, err := q.take()
		require.NoError(t, err)
		require.Equal(t, k, i)
		b, err := io.ReadAll(keys)
		require.NoError(t, err)
		keys.Close()
		assert.Equal(t, q.keys[:], b)
		conns[k], err = net.FilePacketConn(socks[0])
		require.NoError(t, err)
		defer conns[k].Close()
		workers[k] = &worker{id: k, readyAt: time.Now()}
		q.hold(k, workers[k])
	}
	workers[2].stopping = true
	q.update()
	q.release(workers[3])
	k, _, keys, err := q.take()
	require.NoError(t, err)
	keys.Close()
	assert.Equal(t, 3, k, "a free index is taken again") // but not held: 3 stays gone
	server := tcp.Addr().(*net.TCPAddr)
	to := &net.UDPAddr{IP: server.IP, Port: server.Port}

	// received reads what each socket got: its first byte is a tag.
	received := func() map[int][]byte {
		got := map[int][]byte{}
		buf := make([]byte, 2000)
		for k, c := range conns {
			for {
				_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					break
				}
				got[k] = append(got[k], buf[n-1])
			}
		}
		return got
	}
	send := func(from net.PacketConn, b []byte, tag byte) {
		_, err := from.WriteTo(append(b, tag), to)
		require.NoError(t, err)
	}
	clients := make([]net.PacketConn, 8)
	for i := range clients {
		clients[i], err = net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		defer clients[i].Close()
	}

	// A worker's IDs reach it from any client address, the stopping
	// worker's too.
	for i, c := range clients {
		send(c, shortHeader(byte(i%3)), byte(i%3))
	}
	got := received()
	for k := range 3 {
		for _, tag := range got[k] {
			assert.Equal(t, byte(k), tag, "socket %d got a packet for %d", k, tag)
		}
		assert.NotEmpty(t, got[k], "socket %d", k)
	}

	// A client's first Initial: to a serving worker, the same one from
	// any address; the gone worker's IDs too (it answers with a reset).
	initial := randomID(8)
	for i, c := range clients {
		send(c, longHeader(0, initial, 1200), byte(i))
		send(c, shortHeader(3), 100+byte(i))
	}
	got = received()
	assert.Len(t, got, 2, "only serving workers: %v", got)
	var initials []int
	for k, tags := range got {
		assert.Contains(t, []int{0, 1}, k)
		for _, tag := range tags {
			if tag < 100 {
				initials = append(initials, k)
			}
		}
	}
	assert.Len(t, initials, len(clients))
	assert.Len(t, slices.Compact(slices.Sorted(slices.Values(initials))), 1, "one socket for every copy of the Initial")

	// A replacement takes index 3 and starts: until it is ready, the dead
	// worker's IDs still go to serving workers (which reset them), not to
	// a socket nobody reads yet.
	q.hold(3, &worker{id: 4})
	for i, c := range clients {
		send(c, shortHeader(3), byte(i))
	}
	got = received()
	assert.Empty(t, got[3], "the starting worker's socket")
	assert.Len(t, slices.Concat(got[0], got[1]), len(clients), "to serving workers: %v", got)
}
