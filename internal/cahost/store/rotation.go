package store

import (
	"fmt"
	"strings"
	"time"

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
func OldOnlyClients(recs []Record, oldSerial string, trustBegan, now time.Time) []Record {
	var out []Record
	for _, r := range recs {
		if r.Kind != KindClient || r.Status != StatusGood || r.CASerial != oldSerial || !now.Before(r.NotAfter) {
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
type SwitchBlockingError struct{ Left []Record }

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
