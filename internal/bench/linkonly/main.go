// Command linkonly links the same packages as dtls and does nothing. cmdbench
// times it as the floor for `dtls env`: whatever dtls env costs above this is
// dtls's own start-up work, not the Go runtime or package initialisation of
// cfssl and cobra.
package main

import (
	_ "github.com/cloudflare/cfssl/config"
	_ "github.com/cloudflare/cfssl/csr"
	_ "github.com/cloudflare/cfssl/helpers"
	_ "github.com/cloudflare/cfssl/initca"
	_ "github.com/cloudflare/cfssl/signer"
	_ "github.com/cloudflare/cfssl/signer/local"
	_ "github.com/spf13/cobra"
)

func main() {}
