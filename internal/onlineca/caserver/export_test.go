package caserver

import "crypto/x509"

// CACertificates are the CA certificates the server trusts, current first
// (two during a rotation).
func (s *Server) CACertificates() []*x509.Certificate {
	var out []*x509.Certificate
	for _, ca := range s.state.Load().cas() {
		out = append(out, ca.Cert)
	}
	return out
}
