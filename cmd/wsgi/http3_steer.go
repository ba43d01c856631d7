package main

// HTTP/3 with worker processes: the master's UDP sockets, and the
// classic BPF program that steers each datagram to the worker that owns
// its QUIC connection.
//
// QUIC names a connection by the IDs its server issues, not by the
// client's address, so the kernel's SO_REUSEPORT hash of the address
// cannot route its packets: it changes whenever the group of sockets
// changes (a worker replaced, recycled, crashed), and a client may
// change address. So:
//   - The master binds the UDP sockets, one SO_REUSEPORT group per TCP
//     listener's port, and keeps them open as long as it runs: the group
//     never loses a socket, so the index of each (the order it joined,
//     socket(7)) never changes. Each worker gets a socket of its own (the
//     same index in every group); a free one, or a new one appended.
//   - A worker puts its index in the first byte of every connection ID it
//     issues (quicConnIDLen bytes, the rest random: http3.go).
//   - The master attaches a program (SO_ATTACH_REUSEPORT_CBPF) that
//     returns the socket a datagram goes to: for a short header, or a long
//     header whose destination ID has our length, the index that ID names
//     if a worker holds that socket; for a client's first Initial (a
//     destination ID of 8 bytes or more that the client chose), a socket
//     of a worker that accepts connections, by a hash of that ID, so that
//     every packet of the client's first flight lands on the same one.
//     When the workers change, the master attaches a new program.
//   - A stopping worker is taken out of the hash before its SIGTERM: it
//     gets no new connection, while the packets of its connections still
//     reach it until it has sent GOAWAY and they are done. An ID whose
//     worker has exited is hashed like a new one, and the worker it lands
//     on answers with a stateless reset (the key is shared), so that the
//     client learns at once that the connection is gone.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	// quicConnIDLen is the length of the connection IDs workers issue:
	// the index of the worker's socket, then random bytes. It is below 8,
	// the least a client may choose for its first Initial (RFC 9000
	// section 7.2), so that a long header's ID length tells an ID a worker
	// chose from one a client chose.
	quicConnIDLen = 7
	// quicBuckets is how many buckets the hash of a client's ID falls
	// into; each belongs to the socket of an accepting worker, and
	// rebalance moves as few as it can when the workers change.
	quicBuckets = 64
	// maxQUICSockets bounds the sockets of a group: an index is one byte.
	maxQUICSockets = 256
	// quicKeysLen is the keys the master gives every worker: the
	// stateless reset key, then the token key (32 bytes each).
	quicKeysLen = 64
)

// quicSockets are the master's UDP sockets for HTTP/3 and who holds
// them. A nil *quicSockets (no -http3) does nothing.
type quicSockets struct {
	logger  *slog.Logger
	addrs   []*net.UDPAddr // one group per address
	socks   [][]*os.File   // socks[k][g]: the socket of index k in group g
	holder  []*worker      // holder[k]: the worker that has index k; nil: free
	buckets []int          // the socket index of each hash bucket; nil: none accepts
	prog    []bpf.RawInstruction
	keys    [quicKeysLen]byte
}

// newQUICSockets binds the first socket of a group for each TCP address
// of the listeners (a Unix socket has no UDP twin).
func newQUICSockets(logger *slog.Logger, listening []net.Addr) (*quicSockets, error) {
	q := &quicSockets{logger: logger}
	for _, addr := range listening {
		if a, ok := addr.(*net.TCPAddr); ok {
			q.addrs = append(q.addrs, &net.UDPAddr{IP: a.IP, Port: a.Port, Zone: a.Zone})
		}
	}
	if len(q.addrs) == 0 {
		return nil, errors.New("wsgi: http3: no TCP listener to share a port with")
	}
	if _, err := rand.Read(q.keys[:]); err != nil {
		return nil, fmt.Errorf("wsgi: http3: %w", err)
	}
	if err := q.grow(); err != nil {
		q.close()
		return nil, err
	}
	return q, nil
}

// grow binds one more socket in each group: index len(q.socks).
func (q *quicSockets) grow() error {
	if len(q.socks) >= maxQUICSockets {
		return fmt.Errorf("wsgi: http3: more than %d workers at once", maxQUICSockets)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	files := make([]*os.File, 0, len(q.addrs))
	for _, addr := range q.addrs {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr.String())
		if err == nil {
			var f *os.File
			f, err = listenerFile(pc.(*net.UDPConn)) // see listener.go
			_ = pc.Close()                           // f keeps the socket, and its place in the group
			if err == nil {
				files = append(files, f)
				continue
			}
		}
		for _, f := range files {
			_ = f.Close() // the last sockets of their groups: no index moves
		}
		return fmt.Errorf("wsgi: http3: %w", err)
	}
	q.socks = append(q.socks, files)
	q.holder = append(q.holder, nil)
	return nil
}

// take returns a free socket index for a new worker, its sockets (one
// per group) and a pipe holding the keys. The caller hands them to the
// worker, closes the pipe and calls hold.
func (q *quicSockets) take() (k int, socks []*os.File, keys *os.File, err error) {
	k = slices.Index(q.holder, nil)
	if k < 0 {
		if err := q.grow(); err != nil {
			return 0, nil, nil, err
		}
		k = len(q.socks) - 1
	}
	q.flush(k)
	r, w, err := os.Pipe()
	if err != nil {
		return 0, nil, nil, fmt.Errorf("wsgi: http3: %w", err)
	}
	_, err = w.Write(q.keys[:]) // far below a pipe's capacity
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return 0, nil, nil, fmt.Errorf("wsgi: http3: %w", err)
	}
	return k, q.socks[k], r, nil
}

// flush discards the datagrams queued on index k's sockets while no
// worker read them: they belong to connections that are gone.
func (q *quicSockets) flush(k int) {
	buf := make([]byte, 1)
	for _, f := range q.socks[k] {
		for {
			_, _, err := unix.Recvfrom(int(f.Fd()), buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
			if err != nil && !errors.Is(err, unix.EINTR) {
				break // EAGAIN: empty
			}
		}
	}
}

// hold records that w has index k, and steers accordingly.
func (q *quicSockets) hold(k int, w *worker) {
	if q == nil {
		return
	}
	q.holder[k] = w
	q.update()
}

// release frees w's socket index, once w has exited.
func (q *quicSockets) release(w *worker) {
	if q == nil {
		return
	}
	if k := slices.Index(q.holder, w); k >= 0 {
		q.holder[k] = nil
		q.update()
	}
}

// update attaches the program for the workers as they are now: the index
// of each worker that has been ready is steered to, and new connections go
// to the ready workers that are not stopping (to any worker while there
// are none, rather than to a socket no worker reads).
//
// A starting worker's index is not steered to: it has issued no IDs yet
// (no new connection reaches it before it is ready), so packets naming
// its index are those of the dead worker that held it before, and hashed
// like new ones they reach a live worker, which answers with a stateless
// reset at once. Steered to the starting worker, they would wait on its
// socket until it has imported the app (TestQUICSteeringKernel).
func (q *quicSockets) update() {
	if q == nil {
		return
	}
	var held, live, accepting []int
	for k, w := range q.holder {
		if w == nil {
			continue
		}
		held = append(held, k)
		if w.readyAt.IsZero() {
			continue
		}
		live = append(live, k)
		if !w.stopping {
			accepting = append(accepting, k)
		}
	}
	q.buckets = rebalance(q.buckets, accepting)
	buckets := q.buckets
	if buckets == nil {
		buckets = rebalance(nil, held)
	}
	prog, err := bpf.Assemble(steeringProgram(live, buckets))
	if err != nil {
		q.logger.Error("wsgi: http3: cannot assemble the steering program", "err", err)
		return
	}
	if slices.Equal(prog, q.prog) {
		return
	}
	for g := range q.addrs {
		if err := attachReuseportProgram(q.socks[0][g], prog); err != nil {
			q.logger.Error("wsgi: http3: cannot steer packets to workers", "addr", q.addrs[g].String(), "err", err)
			return
		}
	}
	q.prog = prog
	q.logger.Debug("wsgi: http3: steering", "sockets", live, "accepting", accepting)
}

// attachReuseportProgram sets prog as the program of f's SO_REUSEPORT
// group, replacing the one before.
func attachReuseportProgram(f *os.File, prog []bpf.RawInstruction) error {
	fprog := unix.SockFprog{
		Len:    uint16(len(prog)),
		Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0])), // bpf.RawInstruction has SockFilter's layout
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog)
	}); err != nil {
		return err
	}
	return os.NewSyscallError("setsockopt SO_ATTACH_REUSEPORT_CBPF", serr)
}

// close closes every socket, when the master exits.
func (q *quicSockets) close() {
	if q == nil {
		return
	}
	for _, files := range q.socks {
		for _, f := range files {
			_ = f.Close()
		}
	}
}

// rebalance shares the quicBuckets buckets among the socket indexes of
// targets, each getting as many as another or one more, moving as few
// buckets of old (the previous assignment, or nil) as it can. It returns
// nil for no targets.
func rebalance(old []int, targets []int) []int {
	if len(targets) == 0 {
		return nil
	}
	count := map[int]int{}
	for _, k := range targets {
		count[k] = 0
	}
	b := make([]int, quicBuckets)
	for i := range b {
		b[i] = -1
		if len(old) == quicBuckets {
			if _, ok := count[old[i]]; ok {
				b[i] = old[i]
				count[old[i]]++
			}
		}
	}
	// The quotas: those with the most buckets already keep one more.
	order := slices.Clone(targets)
	slices.SortStableFunc(order, func(x, y int) int { return count[y] - count[x] })
	quota := map[int]int{}
	for i, k := range order {
		quota[k] = quicBuckets / len(targets)
		if i < quicBuckets%len(targets) {
			quota[k]++
		}
	}
	for i := len(b) - 1; i >= 0; i-- { // give up the excess, from the end
		if k := b[i]; k >= 0 && count[k] > quota[k] {
			b[i] = -1
			count[k]--
		}
	}
	for i := range b {
		if b[i] >= 0 {
			continue
		}
		for _, k := range order {
			if count[k] < quota[k] {
				b[i] = k
				count[k]++
				break
			}
		}
	}
	return b
}

// steeringProgram is the classic BPF program of a group: it sees a
// datagram's UDP payload and returns the index of the socket that gets
// it. live are the indexes that a worker holds, buckets the socket of
// each hash bucket (none: return an index past the group's end, and the
// kernel picks a socket by its own hash).
//
// A packet whose destination connection ID a worker chose (a short
// header, or a long header with an ID of quicConnIDLen bytes) goes to the
// socket that ID's first byte names, if held; any other QUIC packet is
// hashed by the first four bytes of its ID, and what is not QUIC by
// nothing (bucket 0). Every load is checked against the length first: a
// load past the end would end the program with 0, socket 0.
func steeringProgram(live []int, buckets []int) []bpf.Instruction {
	p := newProgBuilder()
	p.add(bpf.LoadExtension{Num: bpf.ExtLen}, bpf.TAX{})
	p.jumpIf(bpf.JumpLessThan, 1, "other", "")
	p.add(bpf.LoadAbsolute{Off: 0, Size: 1})
	p.jumpIf(bpf.JumpBitsSet, 0x80, "long", "")
	// Short header: the destination ID follows the first byte.
	p.add(bpf.TXA{})
	p.jumpIf(bpf.JumpLessThan, 1+quicConnIDLen, "other", "")
	p.add(bpf.LoadConstant{Dst: bpf.RegX, Val: 1})
	p.jump("index")
	// Long header: version (4 bytes), the ID's length, the ID.
	p.label("long")
	p.add(bpf.TXA{})
	p.jumpIf(bpf.JumpLessThan, 6, "other", "")
	p.add(bpf.LoadAbsolute{Off: 5, Size: 1})
	p.jumpIf(bpf.JumpEqual, quicConnIDLen, "chosen", "")
	p.jumpIf(bpf.JumpLessThan, 4, "other", "")
	p.add(bpf.TXA{})
	p.jumpIf(bpf.JumpLessThan, 6+4, "other", "")
	p.add(bpf.LoadAbsolute{Off: 6, Size: 4})
	p.jump("hash")
	p.label("chosen")
	p.add(bpf.TXA{})
	p.jumpIf(bpf.JumpLessThan, 6+quicConnIDLen, "other", "")
	p.add(bpf.LoadConstant{Dst: bpf.RegX, Val: 6})
	p.jump("index")
	p.label("other")
	p.add(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
	p.jump("hash")
	// X is the offset of an ID a worker chose.
	p.label("index")
	p.add(bpf.LoadIndirect{Off: 0, Size: 1})
	for _, k := range live {
		p.add(bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(k), SkipTrue: 1}, bpf.RetA{})
	}
	p.add(bpf.LoadIndirect{Off: 0, Size: 4}) // its worker is gone: any will reset it
	p.label("hash")
	if len(buckets) == 0 {
		p.add(bpf.RetConstant{Val: math.MaxUint32})
		return p.program()
	}
	p.add(bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(len(buckets))})
	for i, k := range buckets[:len(buckets)-1] {
		p.add(bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(i), SkipTrue: 1}, bpf.RetConstant{Val: uint32(k)})
	}
	p.add(bpf.RetConstant{Val: uint32(buckets[len(buckets)-1])})
	return p.program()
}

// progBuilder writes a BPF program with forward jumps to labels.
type progBuilder struct {
	ins    []bpf.Instruction
	labels map[string]int
	jumps  map[int][2]string // instruction: its labels if true, if false ("": the next)
}

func newProgBuilder() *progBuilder {
	return &progBuilder{labels: map[string]int{}, jumps: map[int][2]string{}}
}

func (p *progBuilder) add(ins ...bpf.Instruction) { p.ins = append(p.ins, ins...) }
func (p *progBuilder) label(name string)          { p.labels[name] = len(p.ins) }

func (p *progBuilder) jumpIf(cond bpf.JumpTest, val uint32, ifTrue, ifFalse string) {
	p.jumps[len(p.ins)] = [2]string{ifTrue, ifFalse}
	p.add(bpf.JumpIf{Cond: cond, Val: val})
}

func (p *progBuilder) jump(to string) {
	p.jumps[len(p.ins)] = [2]string{to}
	p.add(bpf.Jump{})
}

// program resolves the jumps. It panics on a label that is missing or
// behind, or too far for a conditional jump: a bug in the program's text.
func (p *progBuilder) program() []bpf.Instruction {
	skip := func(at int, label string) uint32 {
		if label == "" {
			return 0
		}
		to, ok := p.labels[label]
		if !ok || to <= at {
			panic("wsgi: bpf: bad label " + label)
		}
		return uint32(to - at - 1)
	}
	for at, l := range p.jumps {
		switch ins := p.ins[at].(type) {
		case bpf.Jump:
			ins.Skip = skip(at, l[0])
			p.ins[at] = ins
		case bpf.JumpIf:
			t, f := skip(at, l[0]), skip(at, l[1])
			if t > math.MaxUint8 || f > math.MaxUint8 {
				panic("wsgi: bpf: jump too far to " + l[0] + l[1])
			}
			ins.SkipTrue, ins.SkipFalse = uint8(t), uint8(f)
			p.ins[at] = ins
		}
	}
	return p.ins
}
