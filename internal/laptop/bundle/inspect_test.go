package bundle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// inspectCA makes a CA valid from now.
func inspectCA(t *testing.T, cn string, now time.Time) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(pki.CARequest{CommonName: cn, KeyType: pki.ECDSAP256, Now: now})
	require.NoError(t, err)
	return ca
}

// bundleOf makes the files of a client bundle: a certificate for alice
// from ca, valid for a day from now, with caPEM as ca.pem.
func bundleOf(t *testing.T, ca *pki.CA, caPEM []byte, now time.Time) ([]File, *pki.Issued) {
	t.Helper()
	cl, err := ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: "alice", KeyType: pki.ECDSAP256, Now: now, Validity: 24 * time.Hour})
	require.NoError(t, err)
	meta, err := clientenv.MarshalMeta(clientenv.Meta{Name: "alice", DockerHost: "tcp://docker.example.com:2376", Server: "srv1",
		NotAfter: cl.Cert.NotAfter, Serial: pki.Serial(cl.Cert)})
	require.NoError(t, err)
	return []File{
		{Name: "ca.pem", Data: caPEM},
		{Name: "cert.pem", Data: cl.CertPEM},
		{Name: "key.pem", Data: cl.KeyPEM},
		{Name: clientenv.MetaFile, Data: meta},
	}, cl
}

func writeFiles(t *testing.T, dir string, files []File) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	for _, f := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o600))
	}
	return dir
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

func with(files []File, name string, data []byte) []File {
	out := append([]File(nil), files...)
	for i := range out {
		if out[i].Name == name {
			out[i].Data = data
		}
	}
	return out
}

func ptr(b bool) *bool { return &b }

// TestInspectBundle inspects a good bundle as an archive and as a
// directory, and both must say the same.
func TestInspectBundle(t *testing.T) {
	now := time.Now()
	ca := inspectCA(t, "dtls CA", now)
	files, cl := bundleOf(t, ca, ca.CertPEM, now)
	archive, err := MarshalArchive(files)
	require.NoError(t, err)

	for _, tt := range []struct {
		source string
		path   string
	}{
		{SourceArchive, writeFile(t, "alice.tar.gz", archive)},
		// The name does not matter: the gzip magic number does.
		{SourceArchive, writeFile(t, "alice.bin", archive)},
		{SourceBundle, writeFiles(t, filepath.Join(t.TempDir(), "alice"), files)},
	} {
		t.Run(tt.path, func(t *testing.T) {
			info, err := Inspect(tt.path, now)
			require.NoError(t, err)
			assert.Equal(t, tt.path, info.Path)
			assert.Equal(t, tt.source, info.Source)
			require.NotNil(t, info.Client)
			assert.Equal(t, "CN=alice,O=dtls", info.Client.Subject)
			assert.Equal(t, "CN=dtls CA,O=dtls", info.Client.Issuer)
			assert.Equal(t, pki.Serial(cl.Cert), info.Client.Serial)
			assert.Equal(t, []string{"clientAuth"}, info.Client.EKU)
			assert.Equal(t, "ecdsa-p256", info.Client.KeyType)
			assert.False(t, info.Client.IsCA)
			assert.Equal(t, cl.Cert.NotAfter.UTC(), info.Client.NotAfter)
			assert.Len(t, info.Client.SHA256, 64)
			require.Len(t, info.CAs, 1)
			assert.Equal(t, "CN=dtls CA,O=dtls", info.CAs[0].Subject)
			assert.True(t, info.CAs[0].IsCA)
			assert.Equal(t, "tcp://docker.example.com:2376", info.DockerHost)
			assert.Equal(t, ptr(true), info.KeyMatches)
			assert.Equal(t, ptr(true), info.Chains)
			assert.Empty(t, info.Problems)

			// A day and a half later the client certificate has expired.
			later, err := Inspect(tt.path, now.Add(36*time.Hour))
			require.NoError(t, err)
			assert.Equal(t, []string{`cert.pem: the certificate "alice" expired on ` + cl.Cert.NotAfter.UTC().Format("2006-01-02 15:04 MST")}, later.Problems)
			assert.Equal(t, ptr(true), later.Chains, "expiry is a problem of its own, the chain is still right")
		})
	}
}

// TestInspectJSON pins the JSON keys that 'dtls inspect --output json'
// prints.
func TestInspectJSON(t *testing.T) {
	now := time.Now()
	ca := inspectCA(t, "dtls CA", now)
	files, _ := bundleOf(t, ca, ca.CertPEM, now)
	info, err := Inspect(writeFiles(t, filepath.Join(t.TempDir(), "alice"), files), now)
	require.NoError(t, err)
	data, err := json.Marshal(info)
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &top))
	assert.ElementsMatch(t, []string{"path", "source", "client", "cas", "docker_host", "key_matches", "chains", "problems"}, keys(top))
	assert.JSONEq(t, `[]`, string(top["problems"]), "no problems is an empty list, not null")
	var client map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(top["client"], &client))
	assert.ElementsMatch(t, []string{"subject", "issuer", "serial", "not_before", "not_after", "key_type", "is_ca", "eku", "sha256"}, keys(client))
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestInspectProblems covers bundles that would fail, each with the
// sentence that says why.
func TestInspectProblems(t *testing.T) {
	now := time.Now()
	ca := inspectCA(t, "dtls CA", now)
	other := inspectCA(t, "other CA", now)
	files, cl := bundleOf(t, ca, ca.CertPEM, now)
	foreign, foreignCl := bundleOf(t, other, other.CertPEM, now)
	srv, err := ca.Issue(pki.Request{Kind: pki.KindServer, CommonName: "docker.example.com", Hosts: []string{"docker.example.com"}, Now: now})
	require.NoError(t, err)

	for _, tt := range []struct {
		name       string
		files      []File
		keyMatches *bool
		chains     *bool
		problems   []string
	}{
		{
			name: "key of another certificate", files: with(files, "key.pem", Get(foreign, "key.pem")),
			keyMatches: ptr(false), chains: ptr(true),
			problems: []string{"key.pem is not the key of cert.pem"},
		},
		{
			name: "key.pem is not a key", files: with(files, "key.pem", []byte("not a key\n")),
			chains:   ptr(true),
			problems: []string{"key.pem: no PEM private key found"},
		},
		{
			name: "certificate of another CA", files: with(with(files, "cert.pem", Get(foreign, "cert.pem")), "key.pem", Get(foreign, "key.pem")),
			keyMatches: ptr(true), chains: ptr(false),
			problems: []string{
				`cert.pem: the certificate of "alice" (issuer "other CA") does not chain to ca.pem ("dtls CA") as a client certificate`,
				`dtls.json records serial ` + pki.Serial(cl.Cert) + ` but cert.pem has serial ` + pki.Serial(foreignCl.Cert) + `: the files come from two bundles`,
			},
		},
		{
			name: "server certificate as client", files: with(with(files, "cert.pem", srv.CertPEM), "key.pem", srv.KeyPEM),
			keyMatches: ptr(true), chains: ptr(false),
			problems: []string{
				`cert.pem: the certificate of "docker.example.com" is not for clientAuth (extended key usage: serverAuth), so dockerd refuses it`,
				`cert.pem: the certificate of "docker.example.com" (issuer "dtls CA") does not chain to ca.pem ("dtls CA") as a client certificate`,
				`dtls.json records serial ` + pki.Serial(cl.Cert) + ` but cert.pem has serial ` + pki.Serial(srv.Cert) + `: the files come from two bundles`,
				`dtls.json names "alice" but cert.pem is the certificate of "docker.example.com"`,
			},
		},
		{
			name: "dtls.json without a daemon URL", files: with(files, clientenv.MetaFile, []byte(`{"name":"alice"}`)),
			keyMatches: ptr(true), chains: ptr(true),
			problems: []string{"dtls.json records no daemon URL (docker_host)"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Inspect(writeFiles(t, filepath.Join(t.TempDir(), "b"), tt.files), now)
			require.NoError(t, err)
			assert.Equal(t, tt.keyMatches, info.KeyMatches)
			assert.Equal(t, tt.chains, info.Chains)
			assert.Equal(t, tt.problems, info.Problems)
		})
	}

	t.Run("missing files", func(t *testing.T) {
		dir := writeFiles(t, filepath.Join(t.TempDir(), "b"), files[:2])
		info, err := Inspect(dir, now)
		require.NoError(t, err)
		assert.Equal(t, SourceBundle, info.Source)
		assert.Nil(t, info.KeyMatches)
		assert.Equal(t, []string{"key.pem is missing", "dtls.json is missing"}, info.Problems)
	})
}

// TestInspectRotation: during a CA rotation ca.pem holds the old CA and
// the new one, and a certificate from either chains.
func TestInspectRotation(t *testing.T) {
	now := time.Now()
	oldCA := inspectCA(t, "dtls CA 1", now.Add(-time.Hour))
	newCA := inspectCA(t, "dtls CA 2", now)
	both := append(append([]byte{}, oldCA.CertPEM...), newCA.CertPEM...)

	info, err := Inspect(writeFile(t, "ca.pem", both), now)
	require.NoError(t, err)
	assert.Equal(t, SourceCertificate, info.Source)
	assert.Nil(t, info.Client)
	require.Len(t, info.CAs, 2)
	assert.Equal(t, "CN=dtls CA 1,O=dtls", info.CAs[0].Subject)
	assert.Equal(t, "CN=dtls CA 2,O=dtls", info.CAs[1].Subject)
	assert.Nil(t, info.Chains)
	assert.Empty(t, info.Problems)

	for _, ca := range []*pki.CA{oldCA, newCA} {
		files, _ := bundleOf(t, ca, both, now)
		info, err := Inspect(writeFiles(t, filepath.Join(t.TempDir(), "b"), files), now)
		require.NoError(t, err)
		assert.Len(t, info.CAs, 2)
		assert.Equal(t, ptr(true), info.Chains, ca.Cert.Subject.CommonName)
		assert.Empty(t, info.Problems)
	}
}

// TestInspectCertificateFiles covers single certificates, a chain with its
// key, DER, and a server bundle directory.
func TestInspectCertificateFiles(t *testing.T) {
	now := time.Now()
	ca := inspectCA(t, "dtls CA", now)
	srv, err := ca.Issue(pki.Request{Kind: pki.KindServer, CommonName: "docker.example.com", Hosts: []string{"docker.example.com", "203.0.113.7"}, Now: now})
	require.NoError(t, err)

	t.Run("one certificate", func(t *testing.T) {
		info, err := Inspect(writeFile(t, "server-cert.pem", srv.CertPEM), now)
		require.NoError(t, err)
		assert.Equal(t, SourceCertificate, info.Source)
		require.NotNil(t, info.Client)
		assert.Equal(t, []string{"docker.example.com", "203.0.113.7"}, info.Client.SANs)
		assert.Equal(t, []string{"serverAuth"}, info.Client.EKU)
		assert.Empty(t, info.CAs)
		assert.Nil(t, info.KeyMatches)
		assert.Nil(t, info.Chains)
		assert.Empty(t, info.Problems)
	})
	t.Run("DER", func(t *testing.T) {
		info, err := Inspect(writeFile(t, "server.der", srv.Cert.Raw), now)
		require.NoError(t, err)
		require.NotNil(t, info.Client)
		assert.Equal(t, "CN=docker.example.com,O=dtls", info.Client.Subject)
	})
	t.Run("chain and key", func(t *testing.T) {
		other := inspectCA(t, "other CA", now)
		data := append(append(append([]byte{}, srv.CertPEM...), ca.CertPEM...), srv.KeyPEM...)
		info, err := Inspect(writeFile(t, "all.pem", data), now)
		require.NoError(t, err)
		assert.Equal(t, "CN=docker.example.com,O=dtls", info.Client.Subject)
		require.Len(t, info.CAs, 1)
		assert.Equal(t, ptr(true), info.KeyMatches)
		assert.Equal(t, ptr(true), info.Chains)
		assert.Empty(t, info.Problems)

		data = append(append(append([]byte{}, srv.CertPEM...), other.CertPEM...), other.KeyPEM...)
		info, err = Inspect(writeFile(t, "wrong.pem", data), now)
		require.NoError(t, err)
		assert.Equal(t, ptr(false), info.KeyMatches)
		assert.Equal(t, ptr(false), info.Chains)
		assert.Equal(t, []string{
			`wrong.pem: the private key is not the key of the certificate of "docker.example.com"`,
			`wrong.pem: the certificate of "docker.example.com" (issuer "dtls CA") does not chain to the file's CAs ("other CA") as a server certificate`,
		}, info.Problems)
	})
	t.Run("server bundle", func(t *testing.T) {
		dir := writeFiles(t, filepath.Join(t.TempDir(), "dtls-server-docker"), []File{
			{Name: "ca.pem", Data: ca.CertPEM}, {Name: "server-cert.pem", Data: srv.CertPEM}, {Name: "server-key.pem", Data: srv.KeyPEM},
		})
		info, err := Inspect(dir, now)
		require.NoError(t, err)
		assert.Equal(t, SourceServerBundle, info.Source)
		assert.Equal(t, "CN=docker.example.com,O=dtls", info.Client.Subject)
		assert.Equal(t, ptr(true), info.KeyMatches)
		assert.Equal(t, ptr(true), info.Chains)
		assert.Empty(t, info.DockerHost)
		assert.Empty(t, info.Problems)
	})
}

// TestInspectRefuses covers what is not a bundle or a certificate: the
// error names the path.
func TestInspectRefuses(t *testing.T) {
	now := time.Now()
	ca := inspectCA(t, "dtls CA", now)
	notPEM := writeFile(t, "notes.txt", []byte("hello, world\n"))
	keyOnly := writeFile(t, "key.pem", ca.KeyPEM)
	corrupt := writeFile(t, "broken.tar.gz", []byte{0x1f, 0x8b, 0x08, 0x00, 0x00})
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "nothing")
	badCert := writeFile(t, "bad.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))

	for _, tt := range []struct {
		path, want string
	}{
		{notPEM, `inspect "` + notPEM + `": not a bundle archive (tar.gz), a bundle directory or a certificate (PEM or DER)`},
		{keyOnly, `inspect "` + keyOnly + `": no certificate in the file (PEM blocks: PRIVATE KEY)`},
		{empty, `inspect "` + empty + `": not a bundle directory: no ca.pem, cert.pem or server-cert.pem`},
		{missing, `inspect "` + missing + `": no such file or directory`},
	} {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			_, err := Inspect(tt.path, now)
			assert.EqualError(t, err, tt.want)
		})
	}
	_, err := Inspect(corrupt, now)
	assert.ErrorContains(t, err, `inspect "`+corrupt+`": archive: `)
	_, err = Inspect(badCert, now)
	assert.ErrorContains(t, err, `inspect "`+badCert+`": certificate 1: x509: malformed certificate`)
}
