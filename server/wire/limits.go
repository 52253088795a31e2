package wire

import (
	"fmt"
	"math"
)

// Defaults of Limits, equal to TopGun's server (network/config.rs,
// network/handlers/decode.rs, the BATCH handler).
const (
	DefaultMaxMessageBytes = 2 << 20 // 2 MiB: TopGun's max WebSocket message and HTTP body
	DefaultMaxDepth        = 256     // nested containers, counting the message map itself
	DefaultMaxBatchItems   = 8192    // inner messages of one BATCH

	// DecodedBytesPerMessageByte is how many times MaxMessageBytes a
	// decoded message may take in memory when Limits.MaxDecodedBytes is
	// zero: 64 MiB by default.
	DecodedBytesPerMessageByte = 32
)

// Limits bound what the decoder accepts. A zero Limits is not valid; start
// from DefaultLimits.
type Limits struct {
	// MaxMessageBytes is the largest frame Decode accepts (ErrTooLarge).
	MaxMessageBytes int
	// MaxDepth is the deepest nesting of maps and arrays, the message map
	// itself counting as 1 (ErrTooDeep). It also bounds Encode.
	MaxDepth int
	// MaxBatchItems is the most inner messages Batch.Split returns
	// (ErrTooLarge; TopGun answers ERROR 413).
	MaxBatchItems int
	// MaxDecodedBytes is the most memory one decoded message may take, as
	// Decode counts it while decoding (see the package doc, Limits):
	// a message over it is refused (ErrDecodedTooLarge, also ErrTooLarge)
	// before more is allocated.
	// Zero means DecodedBytesPerMessageByte × MaxMessageBytes.
	MaxDecodedBytes int
}

// maxDecoded is MaxDecodedBytes with its default applied.
func (l Limits) maxDecoded() int {
	if l.MaxDecodedBytes > 0 {
		return l.MaxDecodedBytes
	}
	// In int64, then clamped: 32 × 256 MiB does not fit a 32-bit int.
	return int(min(DecodedBytesPerMessageByte*int64(max(l.MaxMessageBytes, 0)), math.MaxInt))
}

// DefaultLimits returns TopGun's limits: 2 MiB, depth 256, 8192 batch
// items, and 64 MiB of decoded memory per message (MaxDecodedBytes zero).
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes: DefaultMaxMessageBytes,
		MaxDepth:        DefaultMaxDepth,
		MaxBatchItems:   DefaultMaxBatchItems,
	}
}

// Validate reports a limit that cannot work.
func (l Limits) Validate() error {
	switch {
	case l.MaxMessageBytes < 16:
		return fmt.Errorf("wire: Limits.MaxMessageBytes is %d; set at least 16 (default %d)", l.MaxMessageBytes, DefaultMaxMessageBytes)
	case l.MaxDepth < 4:
		return fmt.Errorf("wire: Limits.MaxDepth is %d; set at least 4 (default %d)", l.MaxDepth, DefaultMaxDepth)
	case l.MaxDepth > 10000:
		return fmt.Errorf("wire: Limits.MaxDepth is %d; set at most 10000 (default %d)", l.MaxDepth, DefaultMaxDepth)
	case l.MaxBatchItems < 1:
		return fmt.Errorf("wire: Limits.MaxBatchItems is %d; set at least 1 (default %d)", l.MaxBatchItems, DefaultMaxBatchItems)
	case l.MaxDecodedBytes < 0:
		return fmt.Errorf("wire: Limits.MaxDecodedBytes is %d; set 0 for %d × MaxMessageBytes, or a positive number of bytes", l.MaxDecodedBytes, DecodedBytesPerMessageByte)
	}
	return nil
}
