package wire

import (
	"encoding/binary"
	"fmt"
)

// Batch is BATCH (C→S, flat): several messages in one frame. Data is the
// concatenation of [u32 big-endian length][MsgPack message] for each of
// Count messages; each inner message is handled as if it had arrived alone.
// TopGun's server never sends BATCH.
type Batch struct {
	Count uint32
	Data  []byte
}

func (*Batch) Type() string { return TypeBatch }
func (*Batch) fields() int  { return 2 }
func (m *Batch) body(e *encoder) {
	e.str("count")
	e.uint(uint64(m.Count))
	e.str("data")
	e.bin(m.Data)
}

// PackBatch builds a BATCH from already encoded messages.
func PackBatch(frames ...[]byte) (*Batch, error) {
	size := 0
	for _, f := range frames {
		if uint64(len(f)) > 0xffffffff {
			return nil, fmt.Errorf("wire: BATCH item of %d bytes does not fit a u32 length", len(f))
		}
		size += 4 + len(f)
	}
	data := make([]byte, 0, size)
	for _, f := range frames {
		data = binary.BigEndian.AppendUint32(data, uint32(len(f)))
		data = append(data, f...)
	}
	return &Batch{Count: uint32(len(frames)), Data: data}, nil
}

// Split returns the inner frames of a BATCH with DefaultLimits. The frames
// alias b.Data; decode each with Decode.
func (b *Batch) Split() ([][]byte, error) { return DefaultLimits().SplitBatch(b) }

// SplitBatch returns the inner frames of a BATCH. It fails with ErrTooLarge
// when Count is above MaxBatchItems (TopGun answers ERROR 413 "batch exceeds
// maximum inner item count") and with ErrMalformed when Data does not hold
// exactly Count length-prefixed frames.
func (l Limits) SplitBatch(b *Batch) ([][]byte, error) {
	if int64(b.Count) > int64(l.MaxBatchItems) {
		return nil, &DecodeError{Type: TypeBatch, Path: "count", Kind: ErrTooLarge,
			Reason: fmt.Sprintf("%d items exceed the limit of %d", b.Count, l.MaxBatchItems)}
	}
	out := make([][]byte, 0, min(int(b.Count), len(b.Data)/4+1))
	data := b.Data
	for i := 0; i < int(b.Count); i++ {
		if len(data) < 4 {
			return nil, &DecodeError{Type: TypeBatch, Path: "data", Kind: ErrMalformed,
				Reason: fmt.Sprintf("item %d: truncated length prefix", i)}
		}
		n := binary.BigEndian.Uint32(data)
		data = data[4:]
		if uint64(n) > uint64(len(data)) {
			return nil, &DecodeError{Type: TypeBatch, Path: "data", Kind: ErrMalformed,
				Reason: fmt.Sprintf("item %d claims %d bytes but only %d remain", i, n, len(data))}
		}
		out = append(out, data[:n:n])
		data = data[n:]
	}
	if len(data) != 0 {
		return nil, &DecodeError{Type: TypeBatch, Path: "data", Kind: ErrMalformed,
			Reason: fmt.Sprintf("%d bytes left after %d items", len(data), b.Count)}
	}
	return out, nil
}
