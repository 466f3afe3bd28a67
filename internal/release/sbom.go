package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// The CycloneDX 1.5 JSON document of a binary (https://cyclonedx.org/
// docs/1.5/json/), from the module graph Go records in it: the
// components are exactly the modules linked, with their versions.
type bom struct {
	BOMFormat    string      `json:"bomFormat"`
	SpecVersion  string      `json:"specVersion"`
	SerialNumber string      `json:"serialNumber"`
	Version      int         `json:"version"`
	Metadata     bomMetadata `json:"metadata"`
	Components   []component `json:"components"`
}

type bomMetadata struct {
	Timestamp string    `json:"timestamp"`
	Component component `json:"component"`
}

type component struct {
	Type       string     `json:"type"`
	BOMRef     string     `json:"bom-ref"`
	Name       string     `json:"name"`
	Version    string     `json:"version,omitempty"`
	PURL       string     `json:"purl,omitempty"`
	Hashes     []hash     `json:"hashes,omitempty"`
	Properties []property `json:"properties,omitempty"`
}

type hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// writeSBOM writes BIN.cdx.json for the binary bin of version, built
// from commit, committed at mtime (the binary is built without VCS
// stamping: see goBuild).
func writeSBOM(bin, version, commit string, mtime time.Time) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("build info of %s: %w", bin, err)
	}
	sum := sha256.Sum256(data)
	var goos, goarch string
	var props []property
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
		props = append(props, property{"go:build:" + s.Key, s.Value})
	}
	props = append(props, property{"go:version", bi.GoVersion}, property{"vcs.revision", commit},
		property{"vcs.time", mtime.Format(time.RFC3339)})
	main := component{Type: "application", BOMRef: "pkg:golang/" + bi.Main.Path, Name: bi.Path,
		Version: version, PURL: fmt.Sprintf("pkg:golang/%s@%s?goos=%s&goarch=%s", bi.Main.Path, version, goos, goarch),
		Hashes: []hash{{"SHA-256", fmt.Sprintf("%x", sum)}}, Properties: props}
	doc := bom{BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1,
		// The serial number is a UUID; one derived from the binary's
		// hash keeps the document reproducible.
		SerialNumber: fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", sum[0:4], sum[4:6], append([]byte{0x50 | sum[6]&0x0f}, sum[7]), append([]byte{0x80 | sum[8]&0x3f}, sum[9]), sum[10:16]),
		Metadata:     bomMetadata{Timestamp: mtime.Format(time.RFC3339), Component: main},
		Components:   []component{}}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		purl := "pkg:golang/" + m.Path + "@" + m.Version
		c := component{Type: "library", BOMRef: purl, Name: m.Path, Version: m.Version, PURL: purl}
		if m.Sum != "" {
			c.Properties = []property{{"go:module:sum", m.Sum}}
		}
		doc.Components = append(doc.Components, c)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(bin+".cdx.json", append(out, '\n'), 0o644)
}
