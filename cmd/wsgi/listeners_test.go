package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// peerAnswer is what testdata/peer.py answers.
type peerAnswer struct {
	PID        int      `json:"pid"`
	Worker     string   `json:"worker"`
	ListenEnv  []string `json:"listen_env"`
	RemoteAddr *string  `json:"remote_addr"`
	RemotePort *string  `json:"remote_port"`
	ServerName string   `json:"server_name"`
	ServerPort string   `json:"server_port"`
	Client     any      `json:"client"`
	Server     any      `json:"server"`
}

func parsePeer(t *testing.T, body string) peerAnswer {
	t.Helper()
	var a peerAnswer
	require.NoError(t, json.Unmarshal([]byte(body), &a), body)
	return a
}

// curlUnix GETs path over the Unix socket sock with curl.
func curlUnix(t *testing.T, sock, path string) peerAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--fail", "--unix-socket", sock, "http://localhost"+path).CombinedOutput()
	require.NoError(t, err, "curl: %s", out)
	return parsePeer(t, string(out))
}

var addrsRe = regexp.MustCompile(`msg="wsgi: serving".* addrs=(\S+)`)

// servingAddrs returns every address of the startup record.
func servingAddrs(t *testing.T, p *proc) []string {
	t.Helper()
	p.addr(t)
	m := addrsRe.FindStringSubmatch(p.stderr())
	require.NotNil(t, m, "no addrs= in the startup record:\n%s", p.stderr())
	return strings.Split(m[1], ",")
}

// staleSocket leaves a socket file at path with nothing behind it, as a
// server killed with SIGKILL does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	ln.SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket, fi.Mode().Type())
}

// socketOwner is an owner the test may give a socket, and its ids: as
// root, nobody's (so that the change shows); otherwise this user and its
// group.
func socketOwner(t *testing.T) (spec string, uid, gid int) {
	t.Helper()
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("nobody"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
			return "nobody:" + u.Gid, uid, gid
		}
	}
	u, err := user.Current()
	require.NoError(t, err)
	g, err := user.LookupGroupId(u.Gid)
	require.NoError(t, err)
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return u.Username + ":" + g.Name, uid, gid
}

// TestUnixSocket: a WSGI and an ASGI app over a Unix socket (with curl)
// and TCP at once; the socket gets its mode and owner, a stale socket
// file is replaced, and the socket is removed after SIGTERM.
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, app, protocol, workers string }{
		{"wsgi", "peer:application", "wsgi", "1"},
		{"asgi", "peer:app", "asgi", "1"},
		{"wsgi with two workers", "peer:application", "wsgi", "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sock := filepath.Join(t.TempDir(), "wsgi.sock")
			staleSocket(t, sock)
			owner, uid, gid := socketOwner(t)
			p := start(t, nil, "-addr", "unix:"+sock, "-addr", "127.0.0.1:0", "-socket-mode", "0660", "-socket-owner", owner,
				"-workers", tc.workers, "-shutdown-timeout", "5s", "-dir", testdata, "-app", tc.app, "-protocol", tc.protocol)
			addrs := servingAddrs(t, p)
			require.Len(t, addrs, 2)
			assert.Equal(t, "unix:"+sock, addrs[0])
			assert.Contains(t, p.stderr(), `msg="wsgi: removed a stale unix socket"`)

			fi, err := os.Lstat(sock)
			require.NoError(t, err)
			assert.Equal(t, os.ModeSocket|0o660, fi.Mode(), "socket type and -socket-mode")
			st := fi.Sys().(*syscall.Stat_t)
			assert.Equal(t, uid, int(st.Uid), "-socket-owner user")
			assert.Equal(t, gid, int(st.Gid), "-socket-owner group")

			a := curlUnix(t, sock, "/")
			if tc.protocol == "wsgi" {
				require.NotNil(t, a.RemoteAddr)
				assert.Equal(t, "", *a.RemoteAddr, "REMOTE_ADDR of a unix-socket client: empty, as under gunicorn")
				assert.Nil(t, a.RemotePort, "no REMOTE_PORT")
				assert.Equal(t, "localhost", a.ServerName)
				assert.Equal(t, "80", a.ServerPort)
				assert.Equal(t, tc.workers == "2", a.Worker != "", "served by a worker with -workers 2")
			} else {
				assert.Equal(t, "absent", a.Client, "no client in the scope, as under uvicorn")
				assert.Equal(t, []any{sock, nil}, a.Server, "the spec's [path, None]")
			}

			// The TCP address serves too.
			code, body := get(t, "http://"+addrs[1]+"/")
			require.Equal(t, http.StatusOK, code)
			b := parsePeer(t, body)
			if tc.protocol == "wsgi" {
				require.NotNil(t, b.RemoteAddr)
				assert.Equal(t, "127.0.0.1", *b.RemoteAddr)
			} else {
				assert.Equal(t, "127.0.0.1", b.Client.([]any)[0])
			}

			assert.Equal(t, 0, p.stop(t), p.stderr())
			_, err = os.Lstat(sock)
			assert.ErrorIs(t, err, os.ErrNotExist, "the socket is removed at exit")
		})
	}
}

// TestUnixSocketTrustedProxies: with -trusted-proxies unix, a proxy on
// the socket (nginx's proxy_pass http://unix:...) tells the client's
// address with X-Forwarded-For.
func TestUnixSocketTrustedProxies(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "trusted.sock")
	p := start(t, nil, "-addr", "unix:"+sock, "-trusted-proxies", "unix", "-dir", testdata, "-app", "peer")
	p.addr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--fail", "--unix-socket", sock,
		"-H", "X-Forwarded-For: 198.51.100.9", "http://localhost/").CombinedOutput()
	require.NoError(t, err, "curl: %s", out)
	a := parsePeer(t, string(out))
	require.NotNil(t, a.RemoteAddr)
	assert.Equal(t, "198.51.100.9", *a.RemoteAddr)
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// TestUnixSocketInUse: a path that is another kind of file, or a socket
// another process serves on, is left alone and the command fails.
func TestUnixSocketInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file.sock")
	require.NoError(t, os.WriteFile(file, []byte("data"), 0o644))
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	require.NoError(t, err)
	defer ln.Close()

	for _, tc := range []struct{ name, path, want string }{
		{"not a socket", file, "the path exists and is not a socket"},
		{"in use", live, "another process serves on this socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runBinary(t, "-addr", "unix:"+tc.path, "-dir", testdata, "-app", "peer")
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, tc.want)
			assert.NotContains(t, stderr, "wsgi: serving")
			_, err := os.Lstat(tc.path)
			assert.NoError(t, err, "left alone")
		})
	}
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "data", string(b))
	c, err := net.Dial("unix", live)
	require.NoError(t, err, "the other server's socket still works")
	_ = c.Close()
}

// TestListenFlags: bad -addr, -socket-mode and -socket-owner values are
// usage errors.
func TestListenFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"addr", []string{"-addr", "8080"}, `"8080" is neither host:port nor unix:/path`},
		{"empty unix", []string{"-addr", "unix:"}, "unix: needs a socket path"},
		{"abstract", []string{"-addr", "unix:@wsgi"}, "abstract sockets are not supported"},
		{"long path", []string{"-addr", "unix:/" + strings.Repeat("x", 120)}, "longer than 107 bytes"},
		{"mode", []string{"-socket-mode", "0888"}, `-socket-mode: socket mode "0888" is not octal`},
		{"owner", []string{"-socket-owner", "no-such-user-here"}, "-socket-owner: socket owner: user: unknown user no-such-user-here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runBinary(t, append(tc.args, "-dir", testdata, "-app", "peer")...)
			assert.Equal(t, 2, code, stderr)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// startActivated starts the binary as systemd would for a .socket unit:
// with files open at descriptors 3, 4, ..., LISTEN_FDS and LISTEN_FDNAMES
// set, and LISTEN_PID set to its own pid (by sh, which then execs it).
func startActivated(t *testing.T, files []*os.File, names string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, binary}, args...)...)
	cmd.Env = append(os.Environ(), "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+names)
	cmd.ExtraFiles = files
	return startCmd(t, cmd)
}

// TestSocketActivation: sockets passed the systemd way (a TCP and a Unix
// one) are served instead of -addr, by one process and by two workers;
// the app does not see the variables.
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		workers string
	}{{"one process", "1"}, {"two workers", "2"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tcp, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			sock := filepath.Join(dir, "activated.sock")
			unix, err := net.Listen("unix", sock)
			require.NoError(t, err)
			unix.(*net.UnixListener).SetUnlinkOnClose(false) // systemd owns the file
			tcpFile, err := tcp.(*net.TCPListener).File()
			require.NoError(t, err)
			unixFile, err := unix.(*net.UnixListener).File()
			require.NoError(t, err)

			notBound := filepath.Join(dir, "not-bound.sock")
			p := startActivated(t, []*os.File{tcpFile, unixFile}, "http:unix",
				"-addr", "unix:"+notBound, "-workers", tc.workers, "-shutdown-timeout", "5s",
				"-dir", testdata, "-app", "peer")
			// Only the child holds them now, as when systemd passed them.
			for _, c := range []io.Closer{tcpFile, unixFile, tcp, unix} {
				require.NoError(t, c.Close())
			}
			addrs := servingAddrs(t, p)
			assert.Equal(t, []string{tcp.Addr().String(), "unix:" + sock}, addrs)
			assert.Contains(t, p.stderr(), "wsgi: socket activation: serving the sockets systemd passed")
			_, err = os.Lstat(notBound)
			assert.ErrorIs(t, err, os.ErrNotExist, "-addr is not bound")

			a := curlUnix(t, sock, "/")
			assert.Empty(t, a.ListenEnv, "LISTEN_* and WSGI_WORKER_FDS are unset for the app")
			code, body := get(t, "http://"+tcp.Addr().String()+"/")
			require.Equal(t, http.StatusOK, code)
			b := parsePeer(t, body)
			require.NotNil(t, b.RemoteAddr)
			assert.Equal(t, "127.0.0.1", *b.RemoteAddr)

			if tc.workers == "2" {
				// Both workers accept on both sockets.
				for _, c := range []*http.Client{unixClient(sock), {Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}} {
					seen := map[string]int{}
					require.Eventually(t, func() bool {
						resp, err := c.Get("http://" + tcp.Addr().String() + "/")
						if err != nil {
							return false
						}
						defer resp.Body.Close()
						var a peerAnswer
						if json.NewDecoder(resp.Body).Decode(&a) != nil {
							return false
						}
						seen[a.Worker] = a.PID
						return len(seen) == 2
					}, 10*time.Second, time.Millisecond, "both workers answer")
					assert.NotContains(t, seen, "", "answered by workers")
				}
			} else {
				assert.Equal(t, "", b.Worker)
				assert.Equal(t, p.cmd.Process.Pid, b.PID, "sh exec'd the binary: LISTEN_PID was its pid")
			}

			assert.Equal(t, 0, p.stop(t), p.stderr())
			_, err = os.Lstat(sock)
			assert.NoError(t, err, "a socket systemd passed is systemd's: not removed")
		})
	}
}

// TestSocketActivationOtherPID: LISTEN_PID of another process (a parent
// that was activated and started this one): the sockets are not taken,
// -addr is bound.
func TestSocketActivationOtherPID(t *testing.T) {
	t.Parallel()
	p := start(t, []string{"LISTEN_PID=1", "LISTEN_FDS=1"}, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "peer")
	code, body := get(t, "http://"+p.addr(t)+"/")
	require.Equal(t, http.StatusOK, code)
	assert.Empty(t, parsePeer(t, body).ListenEnv, "unset for the app all the same")
	assert.NotContains(t, p.stderr(), "socket activation")
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// TestSystemdSocketActivate: systemd's own tool for trying socket
// activation, systemd-socket-activate, binds the socket and starts the
// command on the first connection, which waits in the backlog meanwhile.
func TestSystemdSocketActivate(t *testing.T) {
	t.Parallel()
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("no systemd-socket-activate (Debian package systemd)")
	}
	sock := filepath.Join(t.TempDir(), "sd.sock")
	p := startCmd(t, exec.Command(tool, "-l", sock, "--fdname=http", binary, "-dir", testdata, "-app", "peer:app", "-protocol", "asgi"))
	require.Eventually(t, func() bool { _, err := os.Lstat(sock); return err == nil }, 10*time.Second, 10*time.Millisecond,
		"systemd-socket-activate listens")
	a := curlUnix(t, sock, "/") // starts the command
	assert.Equal(t, []any{sock, nil}, a.Server)
	assert.Equal(t, "absent", a.Client)
	assert.Empty(t, a.ListenEnv)
	assert.Equal(t, "unix:"+sock, p.addr(t))
	assert.Equal(t, p.cmd.Process.Pid, a.PID, "the tool execs the command")
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// TestConfigBadSocketOwner: an owner in the file that does not exist is
// refused before the apps import.
func TestConfigBadSocketOwner(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, `addr = "unix:`+filepath.Join(t.TempDir(), "x.sock")+`"
socket_owner = "no-such-user-here"

[[app]]
name = "peer"
dir = %[1]q
module = "peer"
`)
	code, _, stderr := runBinary(t, "-config", cfg)
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, `msg="wsgi: bad listener settings" err="socket owner: user: unknown user no-such-user-here"`)
}
