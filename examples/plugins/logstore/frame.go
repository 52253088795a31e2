package logstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/topgun-go/topgun/abi"
)

// The log file starts with a fixed header and continues with frames.
//
//	header: magic "tglogst\x00" | format version uint32 LE | CRC32-C of the previous 12 bytes, uint32 LE
//	frame:  body length n uint32 LE | CRC32-C of (length bytes, body) uint32 LE | body (n bytes)
//	body:   kind byte | payload
//
// Payloads (uvarint = encoding/binary unsigned varint):
//
//	put:    flags byte (bit 0: backup) | uvarint len | map | uvarint len | key |
//	        uvarint expiration | uvarint created_at | uvarint updated_at | value (the rest)
//	delete: flags byte | uvarint len | map | uvarint len | key
//	commit: uint32 LE number of put and delete frames in the batch it ends
//
// A batch is its put and delete frames followed by one commit frame. Frames
// after the last commit frame belong to a batch that was never acknowledged.
const (
	fileMagic     = "tglogst\x00"
	formatVersion = 1
	headerLen     = 16

	frameHeaderLen = 8

	kindPut    byte = 1
	kindDelete byte = 2
	kindCommit byte = 3

	flagBackup byte = 1

	// maxFrameBody bounds the body of any frame this package writes: the
	// largest put of a valid mutation. Longer lengths are never trusted.
	maxFrameBody = 1 + 1 + 2*binary.MaxVarintLen64 + abi.MaxMapNameBytes + abi.MaxKeyBytes +
		3*binary.MaxVarintLen64 + abi.MaxValueBytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn reports a frame that cannot be read whole or whose checksum does
// not match: the end of what was durably written.
var errTorn = errors.New("logstore: torn frame")

// corruptError reports a frame whose checksum matches but whose content is
// invalid: the file was not written by this package (or by a bug in it), so
// it is not truncated but refused.
type corruptError struct {
	off int64
	msg string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("logstore: invalid frame at offset %d: %s", e.off, e.msg)
}

// frame is one decoded frame. For puts, value aliases the reader's buffer
// and is valid until the next read.
type frame struct {
	kind     byte
	backup   bool
	mapName  string
	key      string
	exp      int64
	created  int64
	updated  int64
	value    []byte
	count    uint32
	valueOff int // offset of value from the start of the frame
}

// frameLen is the encoded size of a frame with the given body length.
func frameLen(body int) int64 { return int64(frameHeaderLen + body) }

func appendHeader(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, fileMagic...)
	dst = binary.LittleEndian.AppendUint32(dst, formatVersion)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func checkHeader(h []byte) error {
	if len(h) < headerLen || string(h[:8]) != fileMagic {
		return errors.New("it does not start with the logstore header")
	}
	if crc32.Checksum(h[:12], castagnoli) != binary.LittleEndian.Uint32(h[12:16]) {
		return errors.New("its header checksum does not match")
	}
	if v := binary.LittleEndian.Uint32(h[8:12]); v != formatVersion {
		return &versionError{v}
	}
	return nil
}

// versionError reports a log header of a format version this build does not
// read: the log is a logstore log, most likely of a newer build.
type versionError struct{ version uint32 }

func (e *versionError) Error() string {
	return fmt.Sprintf("it has format version %d, this build reads version %d", e.version, formatVersion)
}

// appendPut appends a put frame and returns the offset of the value from
// the start of the frame.
func appendPut(dst []byte, backup bool, mapName, key string, exp, created, updated int64, value []byte) ([]byte, int) {
	start := len(dst)
	dst = appendRecordHead(dst, kindPut, backup, mapName, key)
	dst = binary.AppendUvarint(dst, uint64(exp))
	dst = binary.AppendUvarint(dst, uint64(created))
	dst = binary.AppendUvarint(dst, uint64(updated))
	valueOff := len(dst) - start
	dst = append(dst, value...)
	return sealFrame(dst, start), valueOff
}

func appendDelete(dst []byte, backup bool, mapName, key string) []byte {
	start := len(dst)
	dst = appendRecordHead(dst, kindDelete, backup, mapName, key)
	return sealFrame(dst, start)
}

func appendCommit(dst []byte, count uint32) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeaderLen)...)
	dst = append(dst, kindCommit)
	dst = binary.LittleEndian.AppendUint32(dst, count)
	return sealFrame(dst, start)
}

func appendRecordHead(dst []byte, kind byte, backup bool, mapName, key string) []byte {
	dst = append(dst, make([]byte, frameHeaderLen)...)
	var flags byte
	if backup {
		flags = flagBackup
	}
	dst = append(dst, kind, flags)
	dst = binary.AppendUvarint(dst, uint64(len(mapName)))
	dst = append(dst, mapName...)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

// sealFrame fills in the length and checksum of the frame at dst[start:].
func sealFrame(dst []byte, start int) []byte {
	body := dst[start+frameHeaderLen:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	crc := crc32.Update(crc32.Checksum(dst[start:start+4], castagnoli), castagnoli, body)
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	return dst
}

// frameReader reads frames sequentially from r, which starts at file offset
// off and ends at end. Knowing the end, it never allocates for a length
// that cannot be there.
type frameReader struct {
	r   *bufio.Reader
	off int64 // offset of the next frame
	end int64
	buf []byte
}

func newFrameReader(r io.Reader, off, end int64) *frameReader {
	size := int64(64 << 10)
	if n := end - off; n < size {
		size = max(n, 16) // bufio's minimum
	}
	return &frameReader{r: bufio.NewReaderSize(r, int(size)), off: off, end: end}
}

// next reads the frame at fr.off. It returns io.EOF at a clean end, errTorn
// for an incomplete or damaged frame, a *corruptError for a frame with a
// valid checksum but invalid content, and other errors for I/O failures.
// fr.off advances only past frames that are returned.
func (fr *frameReader) next() (frame, error) {
	var hdr [frameHeaderLen]byte
	if n, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) && n == 0 {
			return frame{}, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return frame{}, errTorn
		}
		return frame{}, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n == 0 || n > maxFrameBody || int64(n) > fr.end-fr.off-frameHeaderLen {
		return frame{}, errTorn
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	body := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return frame{}, errTorn
		}
		return frame{}, err
	}
	if !sumMatches(hdr[:], body) {
		return frame{}, errTorn
	}
	f, err := decodeBody(body)
	if err != nil {
		return frame{}, &corruptError{off: fr.off, msg: err.Error()}
	}
	if f.kind == kindPut {
		f.valueOff += frameHeaderLen
	}
	fr.off += frameLen(len(body))
	return f, nil
}

// sumMatches reports whether a frame's checksum, in its header hdr, matches
// its length and body.
func sumMatches(hdr, body []byte) bool {
	return crc32.Update(crc32.Checksum(hdr[0:4], castagnoli), castagnoli, body) == binary.LittleEndian.Uint32(hdr[4:8])
}

// decodeBody decodes a frame body whose checksum matched. valueOff is
// relative to the body.
func decodeBody(b []byte) (frame, error) {
	f := frame{kind: b[0]}
	d := decoder{b: b, i: 1}
	switch f.kind {
	case kindPut, kindDelete:
		flags := d.byte()
		if flags&^flagBackup != 0 {
			return frame{}, fmt.Errorf("unknown flags %#x", flags)
		}
		f.backup = flags&flagBackup != 0
		f.mapName = d.string()
		f.key = d.string()
		if d.err != nil {
			return frame{}, d.err
		}
		if err := abi.ValidateMapName(f.mapName); err != nil {
			return frame{}, err
		}
		if err := abi.ValidateKey(f.key); err != nil {
			return frame{}, err
		}
		if f.kind == kindDelete {
			if d.i != len(b) {
				return frame{}, fmt.Errorf("delete frame has %d trailing bytes", len(b)-d.i)
			}
			return f, nil
		}
		f.exp = d.int64()
		f.created = d.int64()
		f.updated = d.int64()
		if d.err != nil {
			return frame{}, d.err
		}
		f.valueOff = d.i
		f.value = b[d.i:]
		if len(f.value) > abi.MaxValueBytes {
			return frame{}, fmt.Errorf("value is %d bytes, the limit is %d", len(f.value), abi.MaxValueBytes)
		}
		return f, nil
	case kindCommit:
		if len(b) != 5 {
			return frame{}, fmt.Errorf("commit frame has %d bytes, want 5", len(b))
		}
		f.count = binary.LittleEndian.Uint32(b[1:5])
		return f, nil
	default:
		return frame{}, fmt.Errorf("unknown frame kind %d", f.kind)
	}
}

// decoder reads the fields of a frame body, keeping the first error.
type decoder struct {
	b       []byte
	i       int
	err     error
	scratch [binary.MaxVarintLen64]byte
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or malformed %s at body offset %d", what, d.i)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || d.i >= len(d.b) {
		d.fail("flags")
		return 0
	}
	c := d.b[d.i]
	d.i++
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.i:])
	// Only the shortest encoding is accepted, so that a valid frame has
	// exactly one encoding.
	if n <= 0 || n != len(binary.AppendUvarint(d.scratch[:0], v)) {
		d.fail(what)
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) string() string {
	n := d.uvarint("length")
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)-d.i) {
		d.fail("string")
		return ""
	}
	s := string(d.b[d.i : d.i+int(n)])
	d.i += int(n)
	return s
}

func (d *decoder) int64() int64 {
	v := d.uvarint("time")
	if v > math.MaxInt64 {
		d.fail("time")
		return 0
	}
	return int64(v)
}
