//go:build wasip1

package logstore

import "strings"

// keepKey returns the string the index keeps for key. Inside wasm the guest
// SDK cuts the keys of a request from shared chunks (abi.Decoder.ShareKeys),
// and a kept key would keep its whole chunk alive. The index keeps the
// string it is given on every put (a map assignment replaces the stored
// key too), so every kept key is a copy.
func keepKey(k string) string { return strings.Clone(k) }
