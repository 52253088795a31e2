package abi

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits every backend enforces, chosen so that every built-in can store any
// record that passes them: PostgreSQL's btree index rows are capped at 2704
// bytes, which bounds map name + key; a value must fit comfortably in one
// wasm request.
const (
	MaxMapNameBytes = 512
	MaxKeyBytes     = 2048
	MaxValueBytes   = 8 << 20
	MaxBatchOps     = 100_000
	MaxGetKeys      = 100_000
	// MaxMaps is the most map names a list_maps response may hold.
	MaxMaps = 1 << 20
	// MaxBackendNameBytes bounds a backend's name, which goes into logs
	// and metric labels.
	MaxBackendNameBytes = 64
)

// ValidateBackendName checks the name a backend describes itself with:
// 1 to MaxBackendNameBytes bytes of valid UTF-8 without control
// characters. It ends up in logs and in a metric label, which must be
// valid UTF-8 (the metrics library panics on anything else).
func ValidateBackendName(name string) error {
	if name == "" || len(name) > MaxBackendNameBytes {
		return fmt.Errorf("backend name of %d bytes; want 1 to %d", len(name), MaxBackendNameBytes)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("backend name %q is not valid UTF-8", name)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("backend name %q holds a control character", name)
	}
	return nil
}

// ValidateMapName checks a map name: non-empty, valid UTF-8, no NUL byte,
// at most MaxMapNameBytes bytes.
func ValidateMapName(name string) error {
	if name == "" {
		return Errorf(CodeInvalidArgument, "map name is empty")
	}
	if len(name) > MaxMapNameBytes {
		return Errorf(CodeInvalidArgument, "map name is %d bytes, the limit is %d", len(name), MaxMapNameBytes)
	}
	return validText("map name", name)
}

// ValidateKey checks a record key: valid UTF-8, no NUL byte, at most
// MaxKeyBytes bytes. The empty key is allowed.
func ValidateKey(key string) error {
	if len(key) > MaxKeyBytes {
		return Errorf(CodeInvalidArgument, "key is %d bytes, the limit is %d", len(key), MaxKeyBytes)
	}
	return validText("key", key)
}

func validText(what, s string) error {
	if !utf8.ValidString(s) {
		return Errorf(CodeInvalidArgument, "%s %q is not valid UTF-8", what, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return Errorf(CodeInvalidArgument, "%s %q contains a NUL byte", what, s)
	}
	return nil
}

// ValidateBatch checks every mutation of b; backends call it before touching
// storage so that an invalid batch applies nothing.
func ValidateBatch(b *Batch) error {
	if b == nil {
		return Errorf(CodeInvalidArgument, "batch is nil")
	}
	if b.Now <= 0 {
		return Errorf(CodeInvalidArgument, "batch time %d is not positive", b.Now)
	}
	if len(b.Mutations) > MaxBatchOps {
		return Errorf(CodeInvalidArgument, "batch has %d mutations, the limit is %d", len(b.Mutations), MaxBatchOps)
	}
	prevMap := ""
	for i := range b.Mutations {
		m := &b.Mutations[i]
		// Batches usually name one map many times: check each run once.
		if i == 0 || m.Map != prevMap {
			if err := ValidateMapName(m.Map); err != nil {
				return err
			}
			prevMap = m.Map
		}
		if err := ValidateKey(m.Key); err != nil {
			return err
		}
		switch m.Kind {
		case OpPut:
			if len(m.Value) > MaxValueBytes {
				return Errorf(CodeInvalidArgument, "value of key %q in map %q is %d bytes, the limit is %d", m.Key, m.Map, len(m.Value), MaxValueBytes)
			}
			if m.ExpirationTime < 0 {
				return Errorf(CodeInvalidArgument, "expiration time %d of key %q is negative", m.ExpirationTime, m.Key)
			}
		case OpDelete:
		default:
			return Errorf(CodeInvalidArgument, "mutation %d has unknown kind %d", i, m.Kind)
		}
	}
	return nil
}

// ValidateGet checks the arguments of Backend.Get.
func ValidateGet(mapName string, keys []string) error {
	if err := ValidateMapName(mapName); err != nil {
		return err
	}
	if len(keys) > MaxGetKeys {
		return Errorf(CodeInvalidArgument, "get of %d keys, the limit is %d", len(keys), MaxGetKeys)
	}
	for _, k := range keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
	}
	return nil
}

// ValidateScan checks a scan request and fills in defaults.
func ValidateScan(req *ScanRequest) error {
	if err := ValidateMapName(req.Map); err != nil {
		return err
	}
	req.Limit = ScanLimit(req.Limit)
	if req.MaxBytes <= 0 {
		req.MaxBytes = DefaultScanBytes
	}
	return nil
}

// KeyCursor encodes a resume point after key: the cursor the built-in
// backends use. A leading marker byte keeps the empty key distinct from
// "from the start".
func KeyCursor(key string) []byte {
	c := make([]byte, 1+len(key))
	c[0] = 'k'
	copy(c[1:], key)
	return c
}

// ParseKeyCursor decodes a KeyCursor. ok is false for the start of a scan;
// a cursor not made by KeyCursor is an invalid argument.
func ParseKeyCursor(c []byte) (key string, ok bool, err error) {
	if len(c) == 0 {
		return "", false, nil
	}
	if c[0] != 'k' {
		return "", false, Errorf(CodeInvalidArgument, "scan cursor is not one this backend issued")
	}
	return string(c[1:]), true, nil
}

type responseLimitKey struct{}

// WithResponseLimit returns ctx carrying n, the largest response in bytes
// the caller of a Backend can accept (the guest SDK passes the host's
// max_response_bytes this way). Zero or less means no limit.
func WithResponseLimit(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, responseLimitKey{}, n)
}

// ResponseLimit returns the limit WithResponseLimit put in ctx, or 0 when
// there is none. A backend that reads values from storage checks it before
// reading them all: a result the caller cannot accept is refused with
// CodeResourceExhausted without first filling memory with it (inside wasm,
// running out of memory traps and the host discards the instance).
func ResponseLimit(ctx context.Context) int {
	n, _ := ctx.Value(responseLimitKey{}).(int)
	return n
}

// ClampScan returns req with its page cut to what a host whose response
// limit is maxResponse bytes asks of a plugin: a byte budget of at most
// half the limit (a record's framing aside, a page then fits) and at most
// MaxGetKeys records. The host and sdk.Loopback both apply it, so that a
// plugin pages natively as it does in wasm.
func ClampScan(req ScanRequest, maxResponse int) ScanRequest {
	if max := maxResponse / 2; req.MaxBytes <= 0 || req.MaxBytes > max {
		if req.MaxBytes > 0 || DefaultScanBytes > max {
			req.MaxBytes = max
		}
	}
	req.Limit = min(req.Limit, MaxGetKeys)
	return req
}
