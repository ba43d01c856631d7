package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gowsgi/wsgi/config"
)

// unixPrefix marks a Unix socket in -addr: "unix:/run/wsgi.sock".
const unixPrefix = "unix:"

// addrList is the repeatable -addr flag. The first -addr given replaces
// the default.
type addrList struct {
	addrs []string
	set   bool
}

func (l *addrList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.addrs, ",")
}

func (l *addrList) Set(s string) error {
	if err := checkAddr(s); err != nil {
		return err
	}
	if !l.set {
		l.addrs, l.set = nil, true
	}
	l.addrs = append(l.addrs, s)
	return nil
}

// checkAddr accepts "host:port" and "unix:PATH".
func checkAddr(s string) error {
	if path, ok := strings.CutPrefix(s, unixPrefix); ok {
		if path == "" {
			return errors.New("unix: needs a socket path (unix:/path/to.sock)")
		}
		if path[0] == '@' {
			return fmt.Errorf("%q: abstract sockets are not supported; give a file path", s)
		}
		// sockaddr_un holds 108 bytes, the terminating NUL included.
		if len(path) > 107 {
			return fmt.Errorf("socket path %q is longer than 107 bytes", path)
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("%q is neither host:port nor unix:/path", s)
	}
	return nil
}

// listenConfig says where the command listens: its addresses, the mode
// and owner of its Unix sockets, the sockets systemd passed, and the
// PROXY protocol.
type listenConfig struct {
	addrs    []string
	mode     os.FileMode // of Unix sockets; modeSet false: as the umask leaves it
	modeSet  bool
	uid, gid int            // owner of Unix sockets; -1: unchanged
	systemd  []systemdFD    // sockets passed by systemd; when any, addrs are not bound
	proxy    *proxyProtocol // nil: no PROXY protocol
}

// newListenConfig gathers the listening settings: from the flags, or,
// with -config, from the file's keys unless the flag was given.
func newListenConfig(f *flags, cfg *config.Config, logger *slog.Logger) (*listenConfig, error) {
	lc := &listenConfig{addrs: f.addrs.addrs, systemd: f.systemd}
	mode, owner, proxyOn, trusted := f.socketMode, f.socketOwner, f.proxyProtocol, splitList(f.trustedProxies)
	if cfg != nil {
		if !f.set["addr"] && len(cfg.Addr) > 0 {
			lc.addrs = cfg.Addr
		}
		if !f.set["socket-mode"] {
			mode = cfg.SocketMode
		}
		if !f.set["socket-owner"] {
			owner = cfg.SocketOwner
		}
		if !f.set["proxy-protocol"] {
			proxyOn = cfg.ProxyProtocol
		}
		trusted = cfg.ProxyProtocolFrom
	}
	if err := lc.setSocketOptions(mode, owner); err != nil {
		return nil, err
	}
	if proxyOn {
		pp, err := newProxyProtocol(trusted, logger)
		if err != nil {
			return nil, fmt.Errorf("PROXY protocol: %w", err)
		}
		lc.proxy = pp
		if len(trusted) == 0 {
			logger.Warn("wsgi: PROXY protocol without trusted networks: only peers on a unix socket may send a header " +
				"(set -trusted-proxies, or proxy_protocol_from with -config)")
		}
	}
	return lc, nil
}

// parseSocketMode reads octal permission bits ("0660").
func parseSocketMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("socket mode %q is not octal permission bits such as 0660", s)
	}
	return os.FileMode(m), nil
}

// parseSocketOwner reads "user[:group]" (names or numeric ids) into ids;
// -1 for what is not given.
func parseSocketOwner(s string) (uid, gid int, err error) {
	uname, gname, hasGroup := strings.Cut(s, ":")
	if (uname == "" && gname == "") || strings.Contains(gname, ":") {
		return 0, 0, fmt.Errorf("socket owner %q is not user[:group]", s)
	}
	uid, gid = -1, -1
	if uname != "" {
		if uid, err = strconv.Atoi(uname); err != nil {
			u, err := user.Lookup(uname)
			if err != nil {
				return 0, 0, fmt.Errorf("socket owner: %w", err)
			}
			uid, _ = strconv.Atoi(u.Uid)
		}
	}
	if hasGroup && gname != "" {
		if gid, err = strconv.Atoi(gname); err != nil {
			g, err := user.LookupGroup(gname)
			if err != nil {
				return 0, 0, fmt.Errorf("socket owner: %w", err)
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	return uid, gid, nil
}

// setSocketOptions reads -socket-mode and -socket-owner (or the file's
// keys) into lc.
func (lc *listenConfig) setSocketOptions(mode, owner string) error {
	lc.uid, lc.gid = -1, -1
	if mode != "" {
		m, err := parseSocketMode(mode)
		if err != nil {
			return err
		}
		lc.mode, lc.modeSet = m, true
	}
	if owner != "" {
		var err error
		if lc.uid, lc.gid, err = parseSocketOwner(owner); err != nil {
			return err
		}
	}
	return nil
}

// listen opens the listening sockets: those systemd passed, if any, or
// else one per address. The returned cleanup removes the Unix socket
// files it created (call it once the listeners are closed).
func (lc *listenConfig) listen(logger *slog.Logger) (lns []net.Listener, cleanup func(), err error) {
	var created []createdSocket
	cleanup = func() {
		for _, s := range created {
			s.remove(logger)
		}
	}
	defer func() {
		if err != nil {
			for _, ln := range lns {
				_ = ln.Close()
			}
			cleanup()
			lns, cleanup = nil, func() {}
		}
	}()
	if len(lc.systemd) > 0 {
		logger.Info("wsgi: socket activation: serving the sockets systemd passed, not -addr", "sockets", len(lc.systemd))
		for _, sd := range lc.systemd {
			ln, err := sd.listener()
			if err != nil {
				return lns, cleanup, err
			}
			lns = append(lns, ln)
		}
		return lns, cleanup, nil
	}
	for _, a := range lc.addrs {
		if path, ok := strings.CutPrefix(a, unixPrefix); ok {
			ln, s, err := lc.listenUnix(path, logger)
			if err != nil {
				return lns, cleanup, fmt.Errorf("%s: %w", a, err)
			}
			lns, created = append(lns, ln), append(created, s)
			continue
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return lns, cleanup, err
		}
		lns = append(lns, ln)
	}
	return lns, cleanup, nil
}

// A createdSocket is a Unix socket file this process bound; it removes
// it at exit unless another file has taken its place.
type createdSocket struct {
	path string
	info fs.FileInfo
}

func (s createdSocket) remove(logger *slog.Logger) {
	fi, err := os.Lstat(s.path)
	if err != nil || !os.SameFile(fi, s.info) {
		return // gone, or replaced by another server's socket
	}
	if err := os.Remove(s.path); err != nil {
		logger.Warn("wsgi: cannot remove the unix socket", "path", s.path, "err", err)
	}
}

// listenBacklog is asked of listen(2); the kernel caps it at
// net.core.somaxconn, as for net.Listen's sockets.
const listenBacklog = 65535

// listenUnix binds a Unix socket at path, sets its mode and owner before
// it listens (no client can connect with the umask's permissions), and
// listens. A stale socket file at path is replaced (see removeStale).
func (lc *listenConfig) listenUnix(path string, logger *slog.Logger) (net.Listener, createdSocket, error) {
	if err := checkAddr(unixPrefix + path); err != nil { // the config file's addr, made absolute
		return nil, createdSocket{}, err
	}
	if err := removeStale(path, logger); err != nil {
		return nil, createdSocket{}, err
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, createdSocket{}, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), path) // closes fd on every path below
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		return nil, createdSocket{}, os.NewSyscallError("bind", err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		return nil, createdSocket{}, err
	}
	s := createdSocket{path: path, info: info}
	fail := func(err error) (net.Listener, createdSocket, error) {
		s.remove(logger)
		return nil, createdSocket{}, err
	}
	if lc.modeSet {
		if err := os.Chmod(path, lc.mode); err != nil {
			return fail(fmt.Errorf("socket mode: %w", err))
		}
	}
	if lc.uid != -1 || lc.gid != -1 {
		if err := os.Lchown(path, lc.uid, lc.gid); err != nil {
			return fail(fmt.Errorf("socket owner: %w", err))
		}
	}
	if err := syscall.Listen(fd, listenBacklog); err != nil {
		return fail(os.NewSyscallError("listen", err))
	}
	ln, err := net.FileListener(f) // a duplicate; f's descriptor is closed on return
	if err != nil {
		return fail(err)
	}
	return ln, s, nil
}

// removeStale removes a socket file left at path by a server that is
// gone: only a socket (never another kind of file), and only if nothing
// accepts connections on it.
func removeStale(path string, logger *slog.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return errors.New("the path exists and is not a socket; not replacing it")
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return errors.New("another process serves on this socket")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// EAGAIN (a full backlog), EACCES, ...: it may be in use.
		return fmt.Errorf("cannot tell whether the socket is in use: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	logger.Info("wsgi: removed a stale unix socket", "path", path)
	return nil
}

// addrString names a listener's address as -addr does: host:port, or
// unix:PATH.
func addrString(a net.Addr) string {
	if u, ok := a.(*net.UnixAddr); ok {
		return unixPrefix + u.Name
	}
	return a.String()
}

// addrsAttrs are the startup record's attributes for lns: addr, the
// first (tests and scripts read it), and addrs when there are several.
func addrsAttrs(lns []net.Listener) []any {
	attrs := []any{"addr", addrString(lns[0].Addr())}
	if len(lns) > 1 {
		all := make([]string, len(lns))
		for i, ln := range lns {
			all[i] = addrString(ln.Addr())
		}
		attrs = append(attrs, "addrs", strings.Join(all, ","))
	}
	return attrs
}
