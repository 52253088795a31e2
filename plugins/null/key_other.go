//go:build !wasip1

package null

// keepKey returns the string to keep for the key of a new record. Native
// callers pass keys of their own, which null keeps as they are (see
// key_wasip1.go for wasm).
func keepKey(k string) string { return k }
