package authz

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Docker's legacy ("v1", unmanaged) plugin protocol: dockerd POSTs JSON to
// /<Interface>.<Method> on the plugin's socket and expects HTTP 200 with a
// JSON answer. The paths, the media type and the field names below are
// moby's, from pkg/plugins (plugins.go: "Plugin.Activate" and Manifest;
// transport/mimetype.go: VersionMimetype) and pkg/authorization (api.go:
// AuthZApiRequest, AuthZApiResponse, AuthZApiImplements, Request,
// Response). The structs are ours, with the same JSON names, so that dtls
// does not import moby.
const (
	// mediaType is what dockerd sends in Accept (moby
	// pkg/plugins/transport/http.go NewRequest); it does not check the
	// Content-Type of the answer, but plugins conventionally echo it.
	mediaType = "application/vnd.docker.plugins.v1.2+json"

	pathActivate = "/Plugin.Activate"
	pathAuthZReq = "/AuthZPlugin.AuthZReq"
	pathAuthZRes = "/AuthZPlugin.AuthZRes"

	// implementsAuthz is the subsystem the plugin declares on activation;
	// dockerd refuses an authorization plugin whose manifest does not list
	// it (moby pkg/plugins/plugins.go Get: ErrNotImplements).
	implementsAuthz = "authz"
)

// activateResponse is moby's plugins.Manifest.
type activateResponse struct {
	Implements []string
}

// authzRequest is moby's authorization.Request (pkg/authorization/api.go),
// the same for both phases: for AuthZRes dockerd sends the request-phase
// object again with the Response* fields filled in (authz.go
// Ctx.AuthZResponse reuses ctx.authReq).
//
// What dockerd puts in it (pkg/authorization/middleware.go WrapHandler,
// authz.go AuthZRequest):
//   - User is the Subject CommonName of the first TLS peer certificate and
//     UserAuthNMethod is "TLS", only when the connection is TLS with a
//     client certificate; otherwise both are empty, for the unix socket as
//     for plain TCP or TLS without client verification.
//   - RequestUri is the raw request-target (r.RequestURI): API version
//     prefix and query string included; the authorization middleware runs
//     before the version middleware.
//   - RequestBody ([]byte, so base64 in JSON) is sent only when the
//     request's Content-Type is application/json and the path is not
//     /auth; a body over 4 MiB makes dockerd refuse the request itself
//     (maxBodySize) without asking the plugin.
//   - RequestHeaders are flattened (last value wins), without
//     Authorization, X-Registry-Auth and X-Registry-Config.
//   - RequestPeerCertificates are r.TLS.PeerCertificates, leaf first, each
//     encoded by PeerCertificate.MarshalJSON: json.Marshal of the PEM
//     bytes, so a JSON string holding base64 of the PEM text.
//   - ResponseStatusCode is 0 (and absent: omitempty) when the response was
//     hijacked (attach, exec), flushed (logs, events, pulls: any stream, or
//     a body over 64 KiB) or when the handler returned an error (the error
//     is written after the middleware returns): response.go FlushAll
//     resets the status it buffered, server.go makeHTTPHandler writes
//     errors to the unwrapped writer.
type authzRequest struct {
	User                    string            `json:"User,omitempty"`
	UserAuthNMethod         string            `json:"UserAuthNMethod,omitempty"`
	RequestMethod           string            `json:"RequestMethod,omitempty"`
	RequestURI              string            `json:"RequestUri,omitempty"`
	RequestBody             []byte            `json:"RequestBody,omitempty"`
	RequestHeaders          map[string]string `json:"RequestHeaders,omitempty"`
	RequestPeerCertificates []pemCertificate  `json:"RequestPeerCertificates,omitempty"`
	ResponseStatusCode      int               `json:"ResponseStatusCode,omitempty"`
	ResponseBody            []byte            `json:"ResponseBody,omitempty"`
	ResponseHeaders         map[string]string `json:"ResponseHeaders,omitempty"`
}

// authzResponse is moby's authorization.Response. With HTTP 200 dockerd
// reads only Allow and, when it is false, Msg: the client gets 403 and
// "authorization denied by plugin NAME: MSG" (authz.go
// newAuthorizationError). Err is read only from a non-200 answer, which
// dockerd turns into a failed API call (HTTP 500, "plugin NAME failed with
// error: ...": plugins/client.go callWithRetry, authz.go AuthZRequest), so
// the plugin never answers an authorization call with anything but 200.
type authzResponse struct {
	Allow bool   `json:"Allow"`
	Msg   string `json:"Msg,omitempty"`
	Err   string `json:"Err,omitempty"`
}

// pemCertificate is one element of RequestPeerCertificates as it arrives:
// the PEM text, which encoding/json has already decoded from base64 (moby's
// PeerCertificate.MarshalJSON marshals the PEM bytes as a []byte). It is
// parsed after the JSON, so that one bad certificate is reported as such
// rather than as malformed JSON.
type pemCertificate []byte

// parse decodes the PEM block and the certificate in it.
func (c pemCertificate) parse() (*x509.Certificate, error) {
	if len(c) == 0 {
		return nil, errors.New("empty")
	}
	b, _ := pem.Decode(c)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	if b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("PEM block of type %q, want CERTIFICATE", b.Type)
	}
	return x509.ParseCertificate(b.Bytes)
}
