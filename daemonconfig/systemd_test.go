package daemonconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unitDirs makes a lib and an etc unit directory under a temp dir, standing
// in for /lib/systemd/system and /etc/systemd/system.
func unitDirs(t *testing.T) (lib, etc string) {
	t.Helper()
	root := t.TempDir()
	lib = filepath.Join(root, "lib", "systemd", "system")
	etc = filepath.Join(root, "etc", "systemd", "system")
	require.NoError(t, os.MkdirAll(lib, 0o755))
	require.NoError(t, os.MkdirAll(etc, 0o755))
	return lib, etc
}

func putFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

const debianArgs = "/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"

const wantDebianDropIn = `# Written by dtls.
#
# dtls moved the -H (--host) flags of docker.service into "hosts" in
# daemon.json, next to its TLS settings. dockerd refuses to start when a
# setting is given both as a flag and in daemon.json:
#
#   unable to configure the Docker daemon with file /etc/docker/daemon.json:
#   the following directives are specified both as a flag and in the
#   configuration file: hosts: (from flag: [fd://], from file: [...])
#
# so this drop-in clears ExecStart and repeats it without the -H flags, as
# Docker's documentation recommends: "Configure the Docker daemon"
# https://docs.docker.com/engine/daemon/ and "Use the hosts key in
# daemon.json with systemd" in
# https://docs.docker.com/engine/daemon/troubleshoot/
# Run "systemctl daemon-reload" after changing it.
[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
`

func TestFindUnitDebian(t *testing.T) {
	lib, etc := unitDirs(t)
	putFile(t, filepath.Join(lib, "docker.service"), readTestdata(t, "docker.service.debian"))

	u, err := FindUnit([]string{lib, filepath.Join(lib, "missing"), etc})
	require.NoError(t, err)
	require.NotNil(t, u)
	assert.Equal(t, filepath.Join(lib, "docker.service"), u.Path)
	assert.Empty(t, u.DropIns)
	assert.Equal(t, "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS", u.ExecStart)
	assert.Equal(t, []string{"fd://"}, u.Hosts)
	assert.Equal(t, debianArgs, u.Args)
	assert.Equal(t, wantDebianDropIn, string(u.DropIn()))

	// Written once, then FindUnit sees the drop-in: no -H left, and writing
	// again changes nothing.
	path, wrote, err := WriteDropIn(etc, u)
	require.NoError(t, err)
	assert.True(t, wrote)
	assert.Equal(t, filepath.Join(etc, "docker.service.d", "dtls-tls.conf"), path)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, wantDebianDropIn, string(got))
	assert.Equal(t, os.FileMode(0o644), fileMode(t, path))
	assert.Equal(t, os.FileMode(0o755), fileMode(t, filepath.Dir(path)))

	u2, err := FindUnit([]string{lib, etc})
	require.NoError(t, err)
	assert.Equal(t, []string{path}, u2.DropIns)
	assert.Empty(t, u2.Hosts)
	assert.Equal(t, debianArgs, u2.ExecStart)
	assert.Equal(t, debianArgs, u2.Args)
	_, wrote, err = WriteDropIn(etc, u2)
	require.NoError(t, err)
	assert.False(t, wrote)
}

func TestFindUnitNone(t *testing.T) {
	lib, etc := unitDirs(t)
	putFile(t, filepath.Join(etc, "docker.service.d", "http-proxy.conf"), "[Service]\nEnvironment=HTTP_PROXY=http://proxy:3128\n")
	u, err := FindUnit([]string{lib, etc})
	assert.NoError(t, err)
	assert.Nil(t, u)
}

func TestFindUnitOverrides(t *testing.T) {
	lib, etc := unitDirs(t)
	putFile(t, filepath.Join(lib, "docker.service"), readTestdata(t, "docker.service.debian"))
	// "systemctl edit docker" writes override.conf; drop-ins apply in name
	// order across directories, and /etc replaces /lib's of the same name.
	putFile(t, filepath.Join(lib, "docker.service.d", "10-a.conf"), "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H unix:///lib.sock\n")
	putFile(t, filepath.Join(etc, "docker.service.d", "10-a.conf"), "[Service]\nEnvironment=X=1\n")
	putFile(t, filepath.Join(etc, "docker.service.d", "override.conf"),
		"[Unit]\nExecStart=/not/the/service/section\n[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2375 --containerd=/run/containerd/containerd.sock\n")
	putFile(t, filepath.Join(etc, "docker.service.d", "notes.txt"), "[Service]\nExecStart=/ignored\n")

	u, err := FindUnit([]string{lib, etc})
	require.NoError(t, err)
	assert.Equal(t, []string{
		filepath.Join(etc, "docker.service.d", "10-a.conf"),
		filepath.Join(etc, "docker.service.d", "override.conf"),
	}, u.DropIns)
	assert.Equal(t, []string{"fd://", "tcp://0.0.0.0:2375"}, u.Hosts)
	assert.Equal(t, "/usr/bin/dockerd --containerd=/run/containerd/containerd.sock", u.Args)

	// dtls-tls.conf sorts before override.conf, which would still win.
	_, _, err = WriteDropIn(etc, u)
	assert.EqualError(t, err, `write drop-in "`+filepath.Join(etc, "docker.service.d", "dtls-tls.conf")+`": ExecStart is set by "`+
		filepath.Join(etc, "docker.service.d", "override.conf")+`", which systemd applies after it; remove the -H flags there`)
	assert.NoFileExists(t, filepath.Join(etc, "docker.service.d", "dtls-tls.conf"))
}

func TestFindUnitEtcOverridesLib(t *testing.T) {
	lib, etc := unitDirs(t)
	putFile(t, filepath.Join(lib, "docker.service"), readTestdata(t, "docker.service.debian"))
	// A hand-written unit with continuation lines, a "-" prefix, a comment
	// inside the continuation and every spelling of the host flag.
	putFile(t, filepath.Join(etc, "docker.service"), `[Service]
Type=notify
ExecStart=-/usr/bin/dockerd \
  -H fd:// \
# a comment systemd skips
  --host=unix:///var/run/docker.sock \
  -Htcp://127.0.0.1:2375 -H=tcp://10.0.0.1:2375 --host tcp://[::1]:2375 \
  --label "name=my host" --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
`)
	u, err := FindUnit([]string{lib, etc})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(etc, "docker.service"), u.Path)
	assert.Equal(t, []string{"fd://", "unix:///var/run/docker.sock", "tcp://127.0.0.1:2375", "tcp://10.0.0.1:2375", "tcp://[::1]:2375"}, u.Hosts)
	assert.Equal(t, `-/usr/bin/dockerd --label "name=my host" --containerd=/run/containerd/containerd.sock`, u.Args)
	assert.Contains(t, string(u.DropIn()), "\nExecStart=\nExecStart=-/usr/bin/dockerd --label \"name=my host\" --containerd=/run/containerd/containerd.sock\n")
}

func TestFindUnitMasked(t *testing.T) {
	lib, etc := unitDirs(t)
	putFile(t, filepath.Join(lib, "docker.service"), readTestdata(t, "docker.service.debian"))
	require.NoError(t, os.Symlink("/dev/null", filepath.Join(etc, "docker.service")))
	_, err := FindUnit([]string{lib, etc})
	assert.EqualError(t, err, `docker.service is masked ("`+filepath.Join(etc, "docker.service")+`" links to /dev/null)`)
}

func TestWriteDropInWithoutExecStart(t *testing.T) {
	lib, etc := unitDirs(t)
	putFile(t, filepath.Join(lib, "docker.service"), "[Service]\nType=notify\n")
	u, err := FindUnit([]string{lib, etc})
	require.NoError(t, err)
	_, _, err = WriteDropIn(etc, u)
	assert.EqualError(t, err, `write drop-in "`+filepath.Join(etc, "docker.service.d", "dtls-tls.conf")+`": "`+
		filepath.Join(lib, "docker.service")+`" has no ExecStart`)
}

func TestSplitHosts(t *testing.T) {
	for _, tc := range []struct {
		cmdline, args string
		hosts         []string
	}{
		{"/usr/bin/dockerd", "/usr/bin/dockerd", nil},
		{"/usr/bin/dockerd -H fd://", "/usr/bin/dockerd", []string{"fd://"}},
		{"/usr/bin/dockerd -D -H 'unix:///a b.sock' $DOCKER_OPTS", "/usr/bin/dockerd -D $DOCKER_OPTS", []string{"unix:///a b.sock"}},
		{"/usr/bin/dockerd --host=\"tcp://0.0.0.0:2376\" --tlsverify", "/usr/bin/dockerd --tlsverify", []string{"tcp://0.0.0.0:2376"}},
		{"/usr/bin/dockerd --hostname-is-not-a-flag", "/usr/bin/dockerd --hostname-is-not-a-flag", nil},
	} {
		hosts, args := splitHosts(tc.cmdline)
		assert.Equal(t, tc.hosts, hosts, tc.cmdline)
		assert.Equal(t, tc.args, args, tc.cmdline)
	}
}

// Ubuntu's old advice put -H in DOCKER_OPTS of /etc/default/docker; a
// drop-in cannot remove it, so FindUnit reports it for the caller to refuse.
func TestFindUnitHostsHiddenInEnvironmentFile(t *testing.T) {
	lib, _ := unitDirs(t)
	envFile := filepath.Join(t.TempDir(), "docker")
	putFile(t, envFile, "# comment\nDOCKER_OPTS=\"-H tcp://0.0.0.0:2375 --dns 192.0.2.53\"\n")
	putFile(t, filepath.Join(lib, "docker.service"), "[Service]\nEnvironmentFile=-"+envFile+"\nEnvironmentFile=-/nonexistent/optional\nEnvironment=EXTRA=--debug\nExecStart=/usr/bin/dockerd -H fd:// $DOCKER_OPTS ${EXTRA}\n")
	u, err := FindUnit([]string{lib})
	require.NoError(t, err)
	require.NotNil(t, u)
	assert.Equal(t, []string{"fd://"}, u.Hosts)
	assert.Equal(t, []string{"tcp://0.0.0.0:2375"}, u.VarHosts)
	assert.Equal(t, "$DOCKER_OPTS in "+envFile, u.VarSource)
	assert.Equal(t, "/usr/bin/dockerd $DOCKER_OPTS ${EXTRA}", u.Args)
	assert.Equal(t, "/usr/bin/dockerd --dns 192.0.2.53 --debug", u.Expanded)

	// A required environment file that is missing is an error.
	putFile(t, filepath.Join(lib, "docker.service"), "[Service]\nEnvironmentFile=/nonexistent/required\nExecStart=/usr/bin/dockerd $DOCKER_OPTS\n")
	_, err = FindUnit([]string{lib})
	assert.ErrorContains(t, err, `read environment file "/nonexistent/required"`)

	// Variables without host flags: nothing hidden.
	putFile(t, envFile, "DOCKER_OPTS='--dns 192.0.2.53'\n")
	putFile(t, filepath.Join(lib, "docker.service"), "[Service]\nEnvironmentFile="+envFile+"\nExecStart=/usr/bin/dockerd -H fd:// $DOCKER_OPTS\n")
	u, err = FindUnit([]string{lib})
	require.NoError(t, err)
	assert.Empty(t, u.VarHosts)
	assert.Equal(t, "/usr/bin/dockerd --dns 192.0.2.53", u.Expanded)
}

// TestDropInDropsTLSFlags: Merge puts tlsverify, tlscacert, tlscert and
// tlskey in daemon.json, so the drop-in must not repeat them as flags:
// dockerd 20.10 refuses "the following directives are specified both as a
// flag and in the configuration file: tlsverify: (from flag: true, from
// file: true)". Expanded keeps them: it is what dockerd gets today.
func TestDropInDropsTLSFlags(t *testing.T) {
	lib, etc := unitDirs(t)
	putFile(t, filepath.Join(lib, "docker.service"), "[Service]\n"+
		"ExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2376 --tls --tlsverify=true --tlscacert /c/ca.pem --tlscert=/c/cert.pem --tlskey '/c/key.pem' -D --tlsverify-is-not-a-flag\n")
	u, err := FindUnit([]string{lib, etc})
	require.NoError(t, err)
	assert.Equal(t, []string{"fd://", "tcp://0.0.0.0:2376"}, u.Hosts)
	assert.Contains(t, string(u.DropIn()), "\nExecStart=\nExecStart=/usr/bin/dockerd -D --tlsverify-is-not-a-flag\n")
	assert.Contains(t, u.Expanded, "--tlsverify=true")
}

func TestNeedsDropInAndHiddenTLSFlags(t *testing.T) {
	for _, c := range []struct {
		execStart, env   string
		needs, hiddenTLS bool
	}{
		{"/usr/bin/dockerd --containerd=/run/containerd/containerd.sock", "", false, false},
		{"/usr/bin/dockerd -H fd://", "", true, false},
		{"/usr/bin/dockerd --tlsverify --tlscert=/c.pem", "", true, false},
		{"/usr/bin/dockerd $DOCKER_OPTS", `DOCKER_OPTS="--tlsverify"`, false, true},
		{"/usr/bin/dockerd --tls $DOCKER_OPTS", `DOCKER_OPTS="--dns 192.0.2.53"`, true, false},
	} {
		lib, _ := unitDirs(t)
		unit := "[Service]\n"
		if c.env != "" {
			envFile := filepath.Join(t.TempDir(), "docker")
			putFile(t, envFile, c.env+"\n")
			unit += "EnvironmentFile=" + envFile + "\n"
		}
		putFile(t, filepath.Join(lib, "docker.service"), unit+"ExecStart="+c.execStart+"\n")
		u, err := FindUnit([]string{lib})
		require.NoError(t, err)
		assert.Equal(t, c.needs, u.NeedsDropIn(), c.execStart)
		assert.Equal(t, c.hiddenTLS, u.HiddenTLSFlags(), c.execStart)
	}
}
