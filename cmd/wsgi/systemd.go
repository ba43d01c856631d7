package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// systemd socket activation (sd_listen_fds(3)): systemd binds the
// sockets of a .socket unit and starts the service with them open at
// descriptors 3, 4, ..., LISTEN_FDS of them, LISTEN_PID set to the
// service's pid and, optionally, LISTEN_FDNAMES their names,
// colon-separated. The protocol is these three variables; it is read
// here with the standard library rather than with go-systemd's
// activation package, which adds nothing this command needs (it
// returns net.Listeners, and a master must keep the raw descriptors to
// pass them to its workers).
const (
	envListenPID     = "LISTEN_PID"
	envListenFDs     = "LISTEN_FDS"
	envListenFDNames = "LISTEN_FDNAMES"
)

// A systemdFD is one listening socket passed by systemd.
type systemdFD struct {
	fd   int
	name string // from LISTEN_FDNAMES; "" if not given
}

// takeSystemdFDs returns the sockets systemd passed to this process, if
// LISTEN_PID names it, and removes the variables from the environment,
// so that the app's subprocesses (and this command's workers) do not
// take them for theirs. It marks the descriptors close-on-exec. Call it
// early, before the app can start subprocesses.
func takeSystemdFDs() ([]systemdFD, error) {
	pid, n := os.Getenv(envListenPID), os.Getenv(envListenFDs)
	names := os.Getenv(envListenFDNames)
	_ = os.Unsetenv(envListenPID)
	_ = os.Unsetenv(envListenFDs)
	_ = os.Unsetenv(envListenFDNames)
	if pid == "" || n == "" || pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 0 {
		return nil, fmt.Errorf("wsgi: bad %s %q", envListenFDs, n)
	}
	var nameList []string
	if names != "" {
		nameList = strings.Split(names, ":")
	}
	fds := make([]systemdFD, count)
	for i := range fds {
		fds[i].fd = firstInheritedFD + i
		syscall.CloseOnExec(fds[i].fd)
		if len(nameList) == count {
			fds[i].name = nameList[i]
		}
	}
	return fds, nil
}

// listener takes over the descriptor: it must be a listening stream
// socket (TCP or Unix).
func (s systemdFD) listener() (net.Listener, error) {
	what := "systemd socket " + strconv.Itoa(s.fd)
	if s.name != "" {
		what += " (" + s.name + ")"
	}
	typ, err := syscall.GetsockoptInt(s.fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("wsgi: %s: %w", what, os.NewSyscallError("getsockopt", err))
	}
	acc, err := syscall.GetsockoptInt(s.fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("wsgi: %s: %w", what, os.NewSyscallError("getsockopt", err))
	}
	if typ != syscall.SOCK_STREAM || acc != 1 {
		return nil, fmt.Errorf("wsgi: %s is not a listening stream socket (ListenStream= in the .socket unit)", what)
	}
	f := os.NewFile(uintptr(s.fd), what)
	ln, err := net.FileListener(f) // a duplicate
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("wsgi: %s: %w", what, err)
	}
	return ln, nil
}
