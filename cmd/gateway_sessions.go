package cmd

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/dockerhost/gateway"
	"github.com/dtls-tool/dtls/internal/dockerhost/recording"
)

// sessionsServeOptions are the gateway's flags for recorded sessions.
type sessionsServeOptions struct {
	Record      bool
	SessionsDir string
	RecordInput bool
	OnFailure   string
	MaxAge      time.Duration
	MaxSize     string
	maxSize     int64
}

func sessionsServeFlags(c *cobra.Command, io IO, o *sessionsServeOptions) {
	f := c.Flags()
	f.BoolVar(&o.Record, "record-sessions", true, "record exec and attach streams in --sessions-dir")
	sessionsDirFlag(c, io, &o.SessionsDir)
	f.BoolVar(&o.RecordInput, "record-input", false, "record what clients send to exec and attach streams too")
	f.StringVar(&o.OnFailure, "sessions-on-failure", "refuse", "when a recording cannot be written: refuse the stream, or continue unrecorded (with an audit record)")
	f.DurationVar(&o.MaxAge, "sessions-max-age", 90*24*time.Hour, "remove recordings older than this (0: keep)")
	f.StringVar(&o.MaxSize, "sessions-max-size", "0", "remove the oldest recordings beyond this total size, and bound the recordings being written to it together, e.g. 10G (0: no bound)")
}

func (o *sessionsServeOptions) validate() error {
	if o.OnFailure != "refuse" && o.OnFailure != "continue" {
		return fmt.Errorf("--sessions-on-failure: want refuse or continue, got %q", o.OnFailure)
	}
	if o.MaxAge < 0 {
		return fmt.Errorf("--sessions-max-age: want 0 or more, got %s", o.MaxAge)
	}
	n, err := parseSize(o.MaxSize)
	if err != nil {
		return fmt.Errorf("--sessions-max-size: %w", err)
	}
	o.maxSize = n
	o.SessionsDir, err = absPath("sessions-dir", o.SessionsDir)
	return err
}

// parseSize reads a size in bytes with an optional K, M, G or T suffix
// (powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	shift := 0
	if t != "" {
		if k := strings.IndexByte("KMGT", t[len(t)-1]); k >= 0 {
			shift, t = 10*(k+1), t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a size such as 500M or 10G", s)
	}
	return n << shift, nil
}

func (o *sessionsServeOptions) recording() *gateway.Recording {
	if !o.Record {
		return nil
	}
	return &gateway.Recording{Dir: o.SessionsDir, Input: o.RecordInput, Continue: o.OnFailure == "continue",
		Retention: recording.Retention{MaxAge: o.MaxAge, MaxSize: o.maxSize}}
}
