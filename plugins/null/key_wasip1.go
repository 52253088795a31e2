//go:build wasip1

package null

import "strings"

// keepKey returns the string to keep for the key of a new record. Inside
// wasm the guest SDK cuts the keys of a request from shared chunks
// (abi.Decoder.ShareKeys), and a kept key would keep its whole chunk alive,
// so null keeps a copy.
func keepKey(k string) string { return strings.Clone(k) }
