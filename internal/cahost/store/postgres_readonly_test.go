package store

import "fmt"

// OpenPostgresReadOnly is OpenReadOnly for the PostgreSQL database dsn:
// for a long-running reader, such as the authorization plugin, while
// other processes write. It never creates or migrates the schema; Apply
// and Revoke fail, and so does any write on its connection (the session's
// default_transaction_read_only is on). Each query sees what writers had
// committed when it started. The schema must have been made by dtls
// (version 3 or later) and not by a newer dtls than this one.
func OpenPostgresReadOnly(dsn string) (*Store, error) {
	s, err := openPostgres(dsn, pgReaderSetup)
	if err != nil {
		return nil, err
	}
	s.readOnly = true
	v, _, err := s.pgVersion(s.db)
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open database %q: %w", s.path, scrub(err, dsn))
	}
	if v > SchemaVersion {
		s.db.Close()
		return nil, fmt.Errorf("open database %q: schema version %d is newer than this dtls knows (%d): upgrade dtls", s.path, v, SchemaVersion)
	}
	if v < minReadVersion {
		s.db.Close()
		return nil, fmt.Errorf("open database %q: schema version %d is older than this dtls reads (%d): run a dtls command that opens it read-write to migrate it", s.path, v, minReadVersion)
	}
	return s, nil
}
