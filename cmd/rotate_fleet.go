package cmd

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dtls-tool/dtls/internal/cafront"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// runRotateRemote is 'dtls rotate-ca --ca-url' (or --operator alone): a
// step of the online CA's rotation through its operator API
// (cafront.Remote.Rotate).
func runRotateRemote(o *rotateOptions) error {
	r, err := cafront.OpenRemote(o.op.CAURL, o.op.Dir)
	if err != nil {
		return operatorHint(err)
	}
	defer func() { r.Close() }()
	res, err := r.Rotate(context.Background(), cafront.RotationStep(o.Status, o.Switch, o.Finish), o.Force)
	if res != nil && res.RotateResponse != nil {
		renderRemoteStep(o, res)
	}
	return rotateRemoteError(o, err)
}

// rotateRemoteError adds to a failed step what to run.
func rotateRemoteError(o *rotateOptions, err error) error {
	var fe *fleet.Error
	var re *cafront.OperatorRenewalError
	switch {
	case errors.As(err, &fe) && fe.Status == http.StatusConflict:
		return withHint(err, "see where the rotation is: dtls rotate-ca --status --operator %s", o.op.Dir)
	case errors.As(err, &re):
		return withHint(err, "run the same command again: it asks for the same key's certificate")
	}
	return err
}

// renderRemoteStep says what a step of the online CA's rotation did, and
// what comes next.
func renderRemoteStep(o *rotateOptions, res *cafront.Rotated) {
	if res.Step == fleet.RotateStatus {
		printRemoteRotation(o.Out, o.op.Dir, res.RotateResponse)
		return
	}
	if res.CAChanged {
		fmt.Fprintf(o.ErrOut, "operator bundle %s: ca.pem now holds the CA's %d CA certificates\n", o.op.Dir, len(caCerts(res.CA)))
	}
	if res.Renewed != nil {
		fmt.Fprintf(o.ErrOut, "renewed the operator's certificate %q: serial %s -> %s (new CA), in %s\n", res.Renewed.Old.Subject.CommonName, pki.Serial(res.Renewed.Old), pki.Serial(res.Renewed.New), o.op.Dir)
	}
	switch res.Step {
	case fleet.RotateTrust:
		fmt.Fprintf(o.ErrOut, "created the next CA %s at the CA %s\n", describeRotationCA(res.Next), o.op.CAURL)
		fmt.Fprintln(o.ErrOut, "step 1 of 3: certificates are still signed by the current CA; every enrolment and renewal now installs a ca.pem with both CAs")
		fmt.Fprintln(o.ErrOut, "next: let every holder renew once ('dtls agent' on laptops within a day; on each Docker host: sudo dtls renew --server, then restart dockerd to trust the new CA, or nothing more on a host in gateway mode), then: dtls rotate-ca --switch")
	case fleet.RotateSwitch:
		fmt.Fprintf(o.ErrOut, "step 2 of 3: the CA at %s signs new certificates with the new CA %s; both CAs stay trusted\n", o.op.CAURL, describeRotationCA(res.Next))
		printCut(o.ErrOut, "clients whose ca.pem trusts only the old CA (--force): they cannot verify a host renewed from now on until they renew", res.Cut)
		fmt.Fprintln(o.ErrOut, "next: once every certificate of the old CA is renewed or revoked ('dtls rotate-ca --status'): dtls rotate-ca --finish")
	case fleet.RotateFinish:
		fmt.Fprintf(o.ErrOut, "step 3 of 3: dropped the old CA: the CA at %s has only the CA %s, and its listener presents a certificate of it\n", o.op.CAURL, describeRotationCA(&res.Current))
		printCut(o.ErrOut, "certificates of the old CA marked superseded (--force), which no longer work", res.Cut)
		fmt.Fprintln(o.ErrOut, "each Docker host: sudo dtls renew --server (its ca.pem then holds only the new CA), then restart dockerd (a host in gateway mode reloads at once)")
	}
}

// printCut lists the certificates a forced step cut off, after what
// happened to them.
func printCut(w io.Writer, what string, cut []fleet.RotationCert) {
	if len(cut) == 0 {
		return
	}
	fmt.Fprintf(w, "%s (%d):\n", what, len(cut))
	for _, r := range cut {
		fmt.Fprintf(w, "  %s\n", describeRotationCert(r))
	}
}

// printSwitchBlocking lists, at step 1, the clients that hold up
// 'dtls rotate-ca --switch'.
func printSwitchBlocking(w io.Writer, r *fleet.RotateResponse) {
	if r.Step != fleet.RotateTrust {
		return
	}
	if len(r.SwitchBlocking) == 0 {
		fmt.Fprintf(w, "every client issued before step 1 (%s) has renewed: nothing holds up 'dtls rotate-ca --switch'\n", r.TrustBegan.UTC().Format(time.RFC3339))
		return
	}
	fmt.Fprintf(w, "holding up 'dtls rotate-ca --switch': clients issued before step 1 (%s) whose ca.pem trusts only the old CA (or pass --force to switch anyway):\n", r.TrustBegan.UTC().Format(time.RFC3339))
	for _, b := range r.SwitchBlocking {
		fmt.Fprintf(w, "  %s\n", describeRotationCert(b))
	}
}

func caCerts(pemText string) []*x509.Certificate {
	cs, _ := pki.ParseCertificates([]byte(pemText))
	return cs
}

func describeRotationCA(c *fleet.RotationCA) string {
	if c == nil {
		return "(none)"
	}
	return fmt.Sprintf("%q (serial %s, SHA-256 %s, expires %s)", c.Subject, c.Serial, c.Fingerprint, c.NotAfter.UTC().Format("2006-01-02"))
}

func describeRotationCert(r fleet.RotationCert) string {
	what := fmt.Sprintf("%s %q serial %s, expires %s", r.Kind, r.Name, r.Serial, r.NotAfter.UTC().Format(time.RFC3339))
	if r.Kind == store.KindServer {
		return what + ": on that host: sudo dtls renew --server (or revoke it: dtls revoke " + r.Serial + " --ca-url ...)"
	}
	return what + ": its 'dtls agent' renews it at its next run, 'dtls agent --now' at once (or revoke it: dtls revoke " + r.Serial + " --ca-url ...)"
}

// printRemoteRotation is 'dtls rotate-ca --status --ca-url'.
func printRemoteRotation(w io.Writer, opDir string, r *fleet.RotateResponse) {
	printRotationStep(w, r)
	for _, n := range r.Counts {
		which := "current"
		if r.Next != nil && n.CASerial == r.Next.Serial {
			which = "next"
		}
		fmt.Fprintf(w, "good %s certificates of the %s CA: %d\n", n.Kind, which, n.Good)
	}
	if r.Step == fleet.RotateNone {
		return
	}
	printSwitchBlocking(w, r)
	printFinishBlocking(w, r)
	next := "dtls rotate-ca --switch"
	if r.Step == fleet.RotateSwitch {
		next = "dtls rotate-ca --finish"
	}
	fmt.Fprintf(w, "next: %s --operator %s\n", next, opDir)
}

// printRotationStep says which step the online CA's rotation is at, and
// its CAs.
func printRotationStep(w io.Writer, r *fleet.RotateResponse) {
	switch r.Step {
	case fleet.RotateNone:
		fmt.Fprintf(w, "no CA rotation in progress: CA %s\n", describeRotationCA(&r.Current))
		return
	case fleet.RotateTrust:
		fmt.Fprintln(w, "CA rotation: step 1 of 3 (trust): certificates are signed by the current CA; answers carry both CAs")
	case fleet.RotateSwitch:
		fmt.Fprintln(w, "CA rotation: step 2 of 3 (switch): certificates are signed by the new CA; answers carry both CAs")
	}
	fmt.Fprintf(w, "current CA: %s\n", describeRotationCA(&r.Current))
	fmt.Fprintf(w, "next CA: %s\n", describeRotationCA(r.Next))
}

// printFinishBlocking lists the certificates that hold up
// 'dtls rotate-ca --finish'.
func printFinishBlocking(w io.Writer, r *fleet.RotateResponse) {
	if len(r.Blocking) == 0 {
		fmt.Fprintln(w, "nothing holds up 'dtls rotate-ca --finish'")
		return
	}
	fmt.Fprintln(w, "holding up 'dtls rotate-ca --finish' (or pass --force to cut them off):")
	for _, b := range r.Blocking {
		fmt.Fprintf(w, "  %s\n", describeRotationCert(b))
	}
}
