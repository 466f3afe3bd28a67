// Command dtls sets up mutual TLS for a Docker daemon: a private CA, a server
// certificate, one client certificate per person, and daemon.json merged.
package main

import (
	"os"

	"github.com/dtls-tool/dtls/cmd"
)

func main() { os.Exit(cmd.Main()) }
