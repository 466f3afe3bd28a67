// Package failpoint lets tests stop a dtls run at a named step, the way a
// kill -9 or a failing disk would, to check that the next run finishes or
// undoes what was left. It is compiled in only with the build tag
// dtlsfailpoints (go build -tags dtlsfailpoints); the production binary
// gets the no-op in off.go.
package failpoint

// Env names the environment variable that arms a fail point:
//
//	DTLS_TEST_FAIL_AT=NAME        the process exits with status 97 at NAME,
//	                              at once, as a crash would: no deferred
//	                              cleanup runs
//	DTLS_TEST_FAIL_AT=error:NAME  Inject returns an error at NAME, as a
//	                              failing write would
const Env = "DTLS_TEST_FAIL_AT"

// CrashStatus is the exit status of an injected crash.
const CrashStatus = 97
