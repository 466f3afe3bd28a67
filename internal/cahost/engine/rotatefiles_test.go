package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// TestRotationFiles: the three steps over both layouts, the CA host's
// (the old CA copied aside at the begin, no step file) and the online
// CA's (the next CA aside until the finish, a step file): what each step
// leaves, with its modes, the inventory change made with it, and a face
// part that fails leaving nothing.
func TestRotationFiles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		oldAside bool
		stepFile string
	}{
		{"ca host", true, ""},
		{"online CA", false, "rotation.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := newInventory(t)
			dir := filepath.Join(t.TempDir(), "state")
			require.NoError(t, os.Mkdir(dir, 0o700))
			p := func(name string) string { return filepath.Join(dir, name) }
			f := RotationFiles{Dir: dir, CACert: "ca.pem", CAKey: "ca-key.pem", AsideCert: "aside.pem", AsideKey: "aside-key.pem",
				OldAside: tc.oldAside, StepFile: tc.stepFile, CertMode: 0o444, KeyMode: 0o400, StepMode: 0o600,
				Changes: RotationChanges{Begin: "begin", Switch: "switch", Finish: "finish"}}
			require.NoError(t, os.WriteFile(p(f.CACert), inv.ca.CertPEM, 0o444))
			require.NoError(t, os.WriteFile(p(f.CAKey), inv.ca.KeyPEM, 0o400))
			j := &Journal{Dir: p("journal"), Inv: inv.st}
			next, rec, err := NextCA(inv.ca, pki.CARequest{CommonName: "next", Now: inv.now}, "")
			require.NoError(t, err)
			began := inv.now.Truncate(time.Second)

			// A face part that fails: nothing is written.
			boom := errors.New("boom")
			err = BeginRotation(j, f, RotationBegin{Cur: inv.ca, Next: next, Began: began},
				RotationChange{Files: func(*Txn) error { return boom }})
			require.ErrorIs(t, err, boom)
			assert.NoFileExists(t, p(f.AsideCert))

			extra := p("extra.pem")
			require.NoError(t, BeginRotation(j, f, RotationBegin{Cur: inv.ca, Next: next, Began: began},
				RotationChange{DB: store.Change{Insert: []store.Record{rec}}, Files: func(t *Txn) error {
					t.Write(extra, next.CertPEM, 0o444)
					return nil
				}}))
			signer, aside := inv.ca, next
			if tc.oldAside {
				signer, aside = next, inv.ca
			}
			assertFile(t, p(f.CACert), signer.CertPEM, 0o444)
			assertFile(t, p(f.CAKey), signer.KeyPEM, 0o400)
			assertFile(t, p(f.AsideCert), aside.CertPEM, 0o444)
			assertFile(t, p(f.AsideKey), aside.KeyPEM, 0o400)
			assert.FileExists(t, extra)
			got, err := inv.st.Get(rec.Serial)
			require.NoError(t, err)
			assert.NotNil(t, got, "the next CA is recorded in the same change")
			if tc.stepFile != "" {
				st, err := f.ReadStep()
				require.NoError(t, err)
				assert.Equal(t, RotationRecord{Step: fleet.RotateTrust, TrustBegan: began}, st)
			}

			require.NoError(t, SwitchRotation(j, f, RotationChange{}))
			if tc.stepFile != "" {
				st, err := f.ReadStep()
				require.NoError(t, err)
				assert.Equal(t, RotationRecord{Step: fleet.RotateSwitch, TrustBegan: began}, st, "the switch keeps the time the trust began")
				assert.Equal(t, os.FileMode(0o600), mode(t, p(tc.stepFile)))
			}

			require.NoError(t, FinishRotation(j, f, RotationChange{DB: store.Change{Supersede: []string{pki.Serial(inv.ca.Cert)}}}))
			assertFile(t, p(f.CACert), next.CertPEM, 0o444)
			assertFile(t, p(f.CAKey), next.KeyPEM, 0o400)
			for _, n := range []string{f.AsideCert, f.AsideKey, "rotation.json"} {
				assert.NoFileExists(t, p(n))
			}
			old, err := inv.st.Get(pki.Serial(inv.ca.Cert))
			require.NoError(t, err)
			assert.Equal(t, store.StatusSuperseded, old.Status)
			entries, err := os.ReadDir(j.Dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "no journal left")
		})
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func assertFile(t *testing.T, path string, want []byte, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(b), path)
	assert.Equal(t, perm, mode(t, path), path)
}
