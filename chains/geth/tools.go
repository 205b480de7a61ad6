//go:build tools

// Pins go-ethereum's cmd/geth as a dependency of this module so that `go build` takes it at the
// version (and with the checksums) recorded in go.mod and go.sum, not at whatever is newest.
package tools

import _ "github.com/ethereum/go-ethereum/cmd/geth"
