package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Every worker accepts on the same listening socket: one open file
// description, whose O_NONBLOCK flag they all share. os.File.Fd (which
// exec.Cmd.ExtraFiles and net.FileListener call) puts it in blocking mode
// for a moment; a worker whose accept(2) runs then blocks in the kernel,
// where closing its descriptor does not wake it, so its graceful shutdown
// never ends. So the master hands out a File that Fd leaves alone
// (listenerFile), and a worker accepts through a RawConn (fdListener):
// nothing changes the socket's mode once workers run.

// listenerFile returns a duplicate of ln's socket as a File whose Fd does
// not change its blocking mode. Call it before any worker runs: the
// socket is in blocking mode while the File is made.
func listenerFile(ln syscall.Conn) (*os.File, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, os.NewSyscallError("dup", dupErr)
	}
	syscall.CloseOnExec(fd) // exec.Cmd passes it on through ExtraFiles only
	// os.NewFile registers a non-blocking descriptor with the poller and
	// then Fd would set it blocking; a blocking one it leaves alone.
	if err := syscall.SetNonblock(fd, false); err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = f.Close()
		return nil, os.NewSyscallError("setnonblock", err)
	}
	return f, nil
}

// fdListener accepts on an inherited listening socket through the
// poller, never changing the socket's blocking mode.
type fdListener struct {
	f    *os.File
	rc   syscall.RawConn
	addr net.Addr
}

// newFDListener takes over descriptor fd, a listening TCP or Unix socket.
func newFDListener(fd int) (*fdListener, error) {
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	var addr net.Addr
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		addr = &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *syscall.SockaddrInet6:
		addr = &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *syscall.SockaddrUnix:
		addr = &net.UnixAddr{Name: sa.Name, Net: "unix"}
	default:
		return nil, fmt.Errorf("descriptor %d is not a TCP or Unix socket", fd)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil { // a socket from systemd may be blocking
		return nil, os.NewSyscallError("setnonblock", err)
	}
	f := os.NewFile(uintptr(fd), "listener") // non-blocking: registered with the poller
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &fdListener{f: f, rc: rc, addr: addr}, nil
}

// Accept waits for a connection.
func (l *fdListener) Accept() (net.Conn, error) {
	var nfd int
	var aerr error
	err := l.rc.Read(func(s uintptr) bool {
		for {
			nfd, _, aerr = syscall.Accept4(int(s), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			switch {
			case errors.Is(aerr, syscall.EINTR), errors.Is(aerr, syscall.ECONNABORTED):
				continue
			case errors.Is(aerr, syscall.EAGAIN):
				return false // wait until readable
			}
			return true
		}
	})
	if err != nil {
		return nil, err // closed
	}
	if aerr != nil {
		return nil, os.NewSyscallError("accept4", aerr) // EMFILE and the like are Temporary
	}
	cf := os.NewFile(uintptr(nfd), "conn")
	c, err := net.FileConn(cf) // a duplicate of the connection's own descriptor
	_ = cf.Close()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true}) // as net.Listen's connections
	}
	return c, nil
}

// Close stops accepting; the socket stays open in the other processes.
func (l *fdListener) Close() error { return l.f.Close() }

// Addr is the socket's address.
func (l *fdListener) Addr() net.Addr { return l.addr }
