package clientenv

import (
	"fmt"
	"strings"
)

// PythonCAVars are the variables that make Python's requests library, and
// so docker-py, ignore the bundle's ca.pem, in the order requests reads
// them: REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE.
//
// docker-py (and what is built on it: docker-compose v1, Ansible's
// community.docker) puts DOCKER_CERT_PATH/ca.pem in its requests session's
// verify setting (docker/tls.py, TLSConfig.configure_client). But
// requests' Session.merge_environment_settings replaces a request's verify
// of None or True by $REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE before it
// merges the session's setting, and a request's setting wins the merge: the
// variable beats the ca.pem (requests/sessions.py). Filed as
// docker/docker-py#2433 and #2598, both open. requests treats an empty
// variable as unset (`os.environ.get(...) or ...`), and so does
// PythonCAOverrides.
var PythonCAVars = []string{"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}

// PythonCAOverrides returns the names of PythonCAVars that are set and not
// empty in the environment read by getenv (os.Getenv, or a test's map),
// in PythonCAVars' order; nil when none is.
func PythonCAOverrides(getenv func(string) string) []string {
	var set []string
	for _, name := range PythonCAVars {
		if getenv(name) != "" {
			set = append(set, name)
		}
	}
	return set
}

// PythonCAWarning returns one short line for `dtls env` or `dtls check` to
// print when PythonCAOverrides found vars: what fails and what to do. It
// returns "" for no vars. The quoted error is what docker-py 5.0.3 (Debian
// 12's python3-docker) and 7.1.0 print, from OpenSSL, when the variable
// names the system's CA file. `dtls env` runs at every shell start, so the
// line stays short: the detail is in docker/docker-py#2433.
func PythonCAWarning(vars []string) string {
	if len(vars) == 0 {
		return ""
	}
	verb := "is"
	if len(vars) > 1 {
		verb = "are"
	}
	return fmt.Sprintf("%s %s set: docker-py (docker-compose v1, Ansible) verifies the daemon with it, not the bundle's ca.pem, "+
		"and fails with \"unable to get local issuer certificate\" (docker/docker-py#2433); run those tools with env -u %s",
		strings.Join(vars, " and "), verb, strings.Join(vars, " -u "))
}
