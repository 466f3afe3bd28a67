package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// States of the audit trail in TrailStatus.
const (
	TrailWritable = "writable"
	TrailFailing  = "failing"
)

// TrailStatus is the audit trail's state, which the plugin keeps in
// PATH.status next to the trail (0600) for dtls audit: whether the last
// write went through, the last error, and how many records could not be
// written and how many calls were denied for it since the file was
// created (counts survive restarts).
type TrailStatus struct {
	// State is TrailWritable or TrailFailing (the last write failed).
	State string `json:"state"`
	// Since is when the trail entered State.
	Since time.Time `json:"since"`
	// LastError is the last write error, and LastErrorAt when it was.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Unrecorded counts the records that did not reach the file (they
	// went to the journal alone); Denied the calls denied because their
	// record could not be written.
	Unrecorded uint64 `json:"unrecorded"`
	Denied     uint64 `json:"denied"`
	// Updated is when the plugin last wrote this status, PID the plugin's
	// process.
	Updated time.Time `json:"updated"`
	PID     int       `json:"pid"`
}

// statusSize is the status file's fixed size: the file is allocated once,
// at open, and then overwritten in place, which needs no new block on a
// full file system (the state it must then report).
const statusSize = 2048

// StatusPath is the status file of the audit trail at path.
func StatusPath(path string) string { return path + ".status" }

// trailStatus keeps a TrailStatus in its file; the AuditLog's lock guards
// it. A nil *trailStatus (no file) does nothing.
type trailStatus struct {
	f   *os.File
	now func() time.Time
	st  TrailStatus
}

// openTrailStatus opens (creating it) the status file of the trail at
// path, keeping the counts it holds. It is best effort: the trail works
// without it, and dtls audit says when the file is missing or stale.
func openTrailStatus(path string, now func() time.Time) *trailStatus {
	s := &trailStatus{now: now}
	if old, err := ReadTrailStatus(path); err == nil {
		s.st.Unrecorded, s.st.Denied = old.Unrecorded, old.Denied
		s.st.LastError, s.st.LastErrorAt = old.LastError, old.LastErrorAt
	}
	f, err := os.OpenFile(StatusPath(path), os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		f.Chmod(0o600)
		s.f = f
	}
	s.st.State, s.st.Since, s.st.PID = TrailWritable, now(), os.Getpid()
	s.save()
	return s
}

// ReadTrailStatus reads the status file of the audit trail at path.
func ReadTrailStatus(path string) (TrailStatus, error) {
	var st TrailStatus
	b, err := os.ReadFile(StatusPath(path))
	if err != nil {
		return st, fmt.Errorf("read audit trail status %q: %w", StatusPath(path), unwrapPath(err))
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), &st); err != nil {
		return st, fmt.Errorf("read audit trail status %q: %w", StatusPath(path), err)
	}
	return st, nil
}

// fail records a failed write.
func (s *trailStatus) fail(err error) {
	if s == nil {
		return
	}
	now := s.now()
	if s.st.State != TrailFailing {
		s.st.State, s.st.Since = TrailFailing, now
	}
	s.st.LastError, s.st.LastErrorAt = cut(err.Error(), 512), now
	s.save()
}

// unrecorded counts a record that did not reach the file, and the call
// denied for it.
func (s *trailStatus) unrecorded(denied bool) {
	if s == nil {
		return
	}
	s.st.Unrecorded++
	if denied {
		s.st.Denied++
	}
	s.save()
}

// ok records a write that went through: saved only when the state
// changes, so that the usual write costs nothing more.
func (s *trailStatus) ok() {
	if s == nil || s.st.State == TrailWritable {
		return
	}
	s.st.State, s.st.Since = TrailWritable, s.now()
	s.save()
}

// save overwrites the file in place, padded to statusSize.
func (s *trailStatus) save() {
	if s.f == nil {
		return
	}
	s.st.Updated = s.now()
	b, err := json.Marshal(s.st)
	if err != nil || len(b) >= statusSize {
		return
	}
	buf := bytes.Repeat([]byte(" "), statusSize)
	copy(buf, b)
	buf[statusSize-1] = '\n'
	s.f.WriteAt(buf, 0)
}

func (s *trailStatus) close() {
	if s != nil && s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
