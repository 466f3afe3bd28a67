package cafront

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// RotationStep is the step of a CA rotation that 'dtls rotate-ca' asks for
// with --status, --switch or --finish (none: the first step, trust), in
// the names of the online CA's protocol (fleet.RotateStatus, RotateTrust,
// RotateSwitch, RotateFinish).
func RotationStep(status, switchStep, finish bool) string {
	switch {
	case status:
		return fleet.RotateStatus
	case switchStep:
		return fleet.RotateSwitch
	case finish:
		return fleet.RotateFinish
	}
	return fleet.RotateTrust
}

// Rotated is what Remote.Rotate did.
type Rotated struct {
	Step string
	*fleet.RotateResponse
	// CAChanged is true when the operator's ca.pem was replaced by the
	// CA certificates the CA serves now.
	CAChanged bool
	// Renewed is the operator's own renewal; nil when its certificate
	// was of the CA that signs already.
	Renewed *OperatorRenewal
}

// OperatorRenewal is a renewal of the operator's certificate.
type OperatorRenewal struct {
	Old, New *x509.Certificate
}

// OperatorRenewalError is a renewal of the operator's certificate that
// failed: running the step again asks for the same key's certificate
// (agent.RenewNow journals it).
type OperatorRenewalError struct {
	Dir  string
	Cert *x509.Certificate
	Err  error
}

func (e *OperatorRenewalError) Error() string {
	return fmt.Sprintf("renew the operator's certificate %q (serial %s, of the old CA) in %q: %v", e.Cert.Subject.CommonName, pki.Serial(e.Cert), e.Dir, e.Err)
}
func (e *OperatorRenewalError) Unwrap() error { return e.Err }

// Rotate runs a step of the online CA's rotation (RotationStep) and keeps
// the operator's bundle working through it:
//
//   - before the finish, a certificate of the old CA is renewed first: it
//     would hold the finish up, and stop working after it;
//   - after a step, ca.pem takes what the CA serves now (both CAs during
//     the rotation; the listener presents a certificate of the new CA
//     after the finish);
//   - after the switch, the certificate is renewed from the new CA.
//
// A status step changes nothing.
func (r *Remote) Rotate(ctx context.Context, step string, force bool) (*Rotated, error) {
	out := &Rotated{Step: step}
	if step == fleet.RotateFinish {
		st, err := r.Client.Rotate(ctx, fleet.RotateRequest{Step: fleet.RotateStatus})
		if err != nil {
			return nil, err
		}
		if out.Renewed, err = r.renewOperator(ctx, st); err != nil {
			return nil, err
		}
	}
	resp, err := r.Client.Rotate(ctx, fleet.RotateRequest{Step: step, Force: force})
	if err != nil {
		return out, err
	}
	out.RotateResponse = resp
	if step == fleet.RotateStatus {
		return out, nil
	}
	if out.CAChanged, err = agent.SetBundleCA(r.Operator, []byte(resp.CA)); err != nil {
		return out, err
	}
	if step == fleet.RotateSwitch {
		if out.Renewed, err = r.renewOperator(ctx, resp); err != nil {
			return out, err
		}
	}
	return out, nil
}

// renewOperator renews the operator's certificate at once when it is not
// of the CA that signs now (st.Signer), and then calls with the new one.
func (r *Remote) renewOperator(ctx context.Context, st *fleet.RotateResponse) (*OperatorRenewal, error) {
	id, err := bundle.LoadIdentity(r.Operator)
	if err != nil {
		return nil, &OperatorError{Dir: r.Operator, Err: err}
	}
	cas, _ := pki.ParseCertificates([]byte(st.CA))
	for _, ca := range cas {
		if pki.Serial(ca) == st.Signer && id.Cert.CheckSignatureFrom(ca) == nil {
			return nil, nil
		}
	}
	_, renewed, err := agent.RenewNow(ctx, r.Operator, r.Client)
	if err != nil {
		return nil, &OperatorRenewalError{Dir: r.Operator, Cert: id.Cert, Err: err}
	}
	n, err := OpenRemote(r.Client.URL, r.Operator)
	if err != nil {
		return nil, err
	}
	r.Client.CloseIdleConnections()
	r.Client = n.Client
	return &OperatorRenewal{Old: id.Cert, New: renewed}, nil
}
