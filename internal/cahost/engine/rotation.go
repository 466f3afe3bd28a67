package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// OldOnlyClients is the rule by which both rotations of a CA, the local
// one (package authority, 'dtls rotate-ca') and the online CA's (package
// caserver, 'dtls rotate-ca --ca-url'), refuse their switch step: the
// good, unexpired client certificates of the old CA (oldSerial) whose
// bundles were handed out before the trust step began, with a ca.pem of
// the old CA alone. Such a bundle, wherever it was copied, cannot verify a
// server certificate of the new CA, so a switch would cut its holder off.
//
// trustBegan is when the trust step began. The local CA signs clients with
// the new CA from then on, so every client of the old CA is from before
// it: it passes the zero time. The online CA keeps signing with the old CA
// until the switch, with a ca.pem of both CAs from the trust step on: only
// a certificate issued before trustBegan counts (pki.IssuedAt: NotBefore
// is backdated; a certificate issued within the same second as the trust
// step counts, the safe side).
func OldOnlyClients(recs []store.Record, oldSerial string, trustBegan, now time.Time) []store.Record {
	var out []store.Record
	for _, r := range recs {
		if r.Kind != store.KindClient || r.Status != store.StatusGood || r.CASerial != oldSerial || !now.Before(r.NotAfter) {
			continue
		}
		if !trustBegan.IsZero() && !pki.IssuedAt(r.NotBefore, r.NotAfter).Before(trustBegan) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// SwitchBlockingError is a switch refused by OldOnlyClients: Left are the
// clients whose bundles trust only the old CA.
type SwitchBlockingError struct{ Left []store.Record }

func (e *SwitchBlockingError) Error() string {
	n := fmt.Sprintf("%d clients", len(e.Left))
	if len(e.Left) == 1 {
		n = "1 client"
	}
	return fmt.Sprintf("cannot switch the daemon to the new CA: %s of the old CA would not verify it (bundles issued before 'dtls rotate-ca' trust only the old CA)", n)
}

// Holders names the clients of Left, at most max of them, with their
// serials: "alice" (serial 1f), ..., and N more.
func (e *SwitchBlockingError) Holders(max int) string {
	names := make([]string, 0, min(len(e.Left), max+1))
	for i, r := range e.Left {
		if i == max {
			names = append(names, fmt.Sprintf("and %d more", len(e.Left)-i))
			break
		}
		names = append(names, fmt.Sprintf("%q (serial %s, expires %s)", r.Name, r.Serial, r.NotAfter.UTC().Format(time.RFC3339)))
	}
	return strings.Join(names, ", ")
}

// SwitchBlocking are the clients that hold up a switch (OldOnlyClients)
// in inv. Operators (fleet.OperatorRole) are not counted: they talk only
// to the online CA, whose listener keeps its certificate of the old CA
// until the finish, and 'dtls rotate-ca --finish' renews the operator's
// own certificate first.
func SwitchBlocking(inv Inventory, oldSerial string, trustBegan, now time.Time) ([]store.Record, error) {
	clients, err := inv.ByKind(store.KindClient)
	if err != nil {
		return nil, err
	}
	roles, err := inv.Roles()
	if err != nil {
		return nil, err
	}
	var out []store.Record
	for _, r := range OldOnlyClients(clients, oldSerial, trustBegan, now) {
		if roles[r.Name] != fleet.OperatorRole {
			out = append(out, r)
		}
	}
	return out, nil
}

// OldCertificates are the good, unexpired certificates of the old CA
// (oldSerial), clients and servers, but except (the online CA's listener,
// which the finish issues again): what still depends on the old CA, and
// holds up a rotation's finish.
func OldCertificates(inv Inventory, oldSerial, except string, now time.Time) ([]store.Record, error) {
	good, err := inv.ByStatus(store.StatusGood)
	if err != nil {
		return nil, err
	}
	var out []store.Record
	for _, r := range good {
		if r.CASerial == oldSerial && r.Kind != store.KindCA && !expired(r, now) && r.Serial != except {
			out = append(out, r)
		}
	}
	return out, nil
}

// BlockingError is a finish refused by OldCertificates: Left still chain
// to the old CA.
type BlockingError struct{ Left []store.Record }

func (e *BlockingError) Error() string {
	return fmt.Sprintf("%d certificates still chain to the old CA", len(e.Left))
}

// Holders names the certificates of Left, at most max of them: client
// "alice" (serial 1f), ..., and N more.
func (e *BlockingError) Holders(max int) string {
	names := make([]string, 0, min(len(e.Left), max+1))
	for i, r := range e.Left {
		if i == max {
			names = append(names, fmt.Sprintf("and %d more", len(e.Left)-i))
			break
		}
		names = append(names, fmt.Sprintf("%s %q (serial %s)", r.Kind, r.Name, r.Serial))
	}
	return strings.Join(names, ", ")
}

// The refusals of the steps of a rotation, both faces'.
var (
	ErrRotationInProgress = errors.New("a CA rotation is already in progress")
	ErrNoRotation         = errors.New("no CA rotation in progress")
)

// Step is where a rotation is, for the refusals of its steps.
type Step int

// The steps of a rotation: the local CA's and the online CA's alike.
const (
	NotRotating  Step = iota
	StepTrust         // 1 of 3: both CAs trusted, the old one still serves (and, online, signs)
	StepSwitched      // 2 of 3: the new CA serves (and, online, signs)
)

// Number is the step's number out of 3 (0 outside a rotation).
func (s Step) Number() int { return int(s) }

// Next is the command that takes the rotation to its next step.
func (s Step) Next() string {
	switch s {
	case StepTrust:
		return "dtls rotate-ca --switch"
	case StepSwitched:
		return "dtls rotate-ca --finish"
	}
	return "dtls rotate-ca"
}

// CheckBegin refuses a new rotation while one is in progress.
func CheckBegin(step Step) error {
	if step == NotRotating {
		return nil
	}
	return hintf(ErrRotationInProgress, "it is at step %d of 3; next: %s (see 'dtls rotate-ca --status')", step.Number(), step.Next())
}

// CheckSwitch refuses a switch outside step 1; switched says what is
// already on the new CA at step 2.
func CheckSwitch(step Step, switched error) error {
	switch step {
	case NotRotating:
		return hintf(fmt.Errorf("%w: nothing to switch", ErrNoRotation), "start one with 'dtls rotate-ca'")
	case StepSwitched:
		return hintf(fmt.Errorf("nothing to switch: %w", switched), "next: dtls rotate-ca --finish")
	}
	return nil
}

// CheckFinish refuses a finish outside step 2; notSwitched says what is
// still on the old CA at step 1.
func CheckFinish(step Step, notSwitched error) error {
	switch step {
	case NotRotating:
		return hintf(fmt.Errorf("%w: nothing to finish", ErrNoRotation), "start one with 'dtls rotate-ca'")
	case StepTrust:
		return hintf(fmt.Errorf("cannot drop the old CA yet: %w", notSwitched), "switch it first: dtls rotate-ca --switch (see 'dtls rotate-ca --status')")
	}
	return nil
}
