package redb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// Layout of the file (see doc.go for the prose).
var (
	bucketMeta   = []byte("topgun") // format marker: key "format" = decimal version
	bucketExpiry = []byte("expiry") // expiry index, keys only
	keyFormat    = []byte("format")
)

// Each map has a top-level bucket per kind, named by a prefix and the map
// name, so that reaching a map's records costs one bucket lookup.
const (
	prefixPrimary = "p:"
	prefixBackup  = "b:"
)

// appendBucketName appends the name of the bucket of one map to dst.
func appendBucketName(dst []byte, mapName string, backup bool) []byte {
	if backup {
		dst = append(dst, prefixBackup...)
	} else {
		dst = append(dst, prefixPrimary...)
	}
	return append(dst, mapName...)
}

// A map bucket carries a checksum of its own name in its bbolt sequence
// (which nothing else uses): the record checksum does not cover the map,
// so without it a damaged byte of a bucket name would move the whole map's
// records to another map name without an error. Buckets written before
// the name checksum have sequence 0 and are not checked.
func bucketNameSum(name []byte) uint64 {
	return 1<<32 | uint64(crc32.Checksum(name, castagnoli))
}

// checkBucketName checks the name checksum of map bucket mb, named name.
func checkBucketName(mb *bolt.Bucket, name []byte) error {
	if s := mb.Sequence(); s != 0 && s != bucketNameSum(name) {
		return fmt.Errorf("%w: bucket %q does not carry the checksum of its name (sequence %#x)", errCorruptRecord, name, s)
	}
	return nil
}

// formatVersion is the layout version this package writes and understands.
// Open refuses files with a larger version.
const formatVersion = 1

// Inside a map bucket the bbolt key of a record is its key's bytes, except
// for the empty key, which bbolt does not store: it is emptyRecordKey, a NUL
// byte, which no valid key contains and which sorts before every other key.
var emptyRecordKey = []byte{0}

// recordKey returns the bbolt key of a record key without copying it. The
// slice shares the string's memory and must only be read: bbolt only reads
// the keys it seeks with and copies the keys it stores.
func recordKey(key string) []byte {
	if key == "" {
		return emptyRecordKey
	}
	return unsafe.Slice(unsafe.StringData(key), len(key))
}

// keyOf returns the record key of a bbolt key.
func keyOf(k []byte) string {
	if len(k) == 1 && k[0] == 0 {
		return ""
	}
	return string(k)
}

// Record values are a fixed header followed by the opaque value bytes:
//
//	offset 0   1 byte   recordTag (layout of the header)
//	offset 1   4 bytes  CRC-32C (Castagnoli), big-endian, of the bbolt key
//	                    followed by bytes 5 to the end
//	offset 5   8 bytes  created_at, big-endian int64 (Unix ms, > 0)
//	offset 13  8 bytes  updated_at, big-endian int64 (Unix ms, > 0)
//	offset 21  8 bytes  expiration_time, big-endian int64 (Unix ms, >= 0; 0 = never)
//	offset 29  ...      value
//
// bbolt checks nothing but its meta pages; the checksum finds a damaged
// value, a damaged length or a key that changed, instead of returning them.
const (
	recordTag       = 1
	recordHeaderLen = 29
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordHeader is the metadata stored in front of every value.
type recordHeader struct {
	CreatedAt      int64
	UpdatedAt      int64
	ExpirationTime int64
}

// errCorruptRecord is the cause of every record decoding error.
var errCorruptRecord = errors.New("corrupt record")

func recordCRC(key, rec []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, rec[5:])
}

// putRecord writes the record of key (its bbolt key) into dst, which must be
// exactly recordHeaderLen+len(value) bytes long.
func putRecord(dst, key []byte, h recordHeader, value []byte) {
	dst[0] = recordTag
	binary.BigEndian.PutUint64(dst[5:], uint64(h.CreatedAt))
	binary.BigEndian.PutUint64(dst[13:], uint64(h.UpdatedAt))
	binary.BigEndian.PutUint64(dst[21:], uint64(h.ExpirationTime))
	copy(dst[recordHeaderLen:], value)
	binary.BigEndian.PutUint32(dst[1:], recordCRC(key, dst))
}

// encodeRecord returns a new encoded record.
func encodeRecord(key []byte, h recordHeader, value []byte) []byte {
	dst := make([]byte, recordHeaderLen+len(value))
	putRecord(dst, key, h, value)
	return dst
}

// decodeRecord splits the stored record b of key (its bbolt key) into its
// header and value. The value aliases b. Bytes that putRecord could not have
// produced from a valid batch are an error wrapping errCorruptRecord.
func decodeRecord(key, b []byte) (recordHeader, []byte, error) {
	if len(b) < recordHeaderLen {
		return recordHeader{}, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", errCorruptRecord, len(b), recordHeaderLen)
	}
	if b[0] != recordTag {
		return recordHeader{}, nil, fmt.Errorf("%w: unknown header tag %d", errCorruptRecord, b[0])
	}
	if got, want := binary.BigEndian.Uint32(b[1:]), recordCRC(key, b); got != want {
		return recordHeader{}, nil, fmt.Errorf("%w: checksum %08x, computed %08x", errCorruptRecord, got, want)
	}
	h := recordHeader{
		CreatedAt:      int64(binary.BigEndian.Uint64(b[5:])),
		UpdatedAt:      int64(binary.BigEndian.Uint64(b[13:])),
		ExpirationTime: int64(binary.BigEndian.Uint64(b[21:])),
	}
	if h.CreatedAt <= 0 || h.UpdatedAt <= 0 || h.ExpirationTime < 0 {
		return recordHeader{}, nil, fmt.Errorf("%w: times out of range (created %d, updated %d, expiration %d)", errCorruptRecord, h.CreatedAt, h.UpdatedAt, h.ExpirationTime)
	}
	return h, b[recordHeaderLen:], nil
}

// Expiry index keys sort by expiration time, then map, backup flag and key
// (the order plugins/null uses), and carry everything needed to find the
// record. Map names never contain NUL, so a NUL ends the map name.
//
//	8 bytes big-endian expiration | map name | 0x00 | backup 0 or 1 | key
const expiryKeyMin = 8 + 1 + 1 + 1 // non-empty map name

func appendExpiryKey(dst []byte, exp int64, mapName string, backup bool, key string) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(exp))
	dst = append(dst, mapName...)
	dst = append(dst, 0)
	if backup {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	return append(dst, key...)
}

// parseExpiryKey is the inverse of appendExpiryKey. mapName and key alias k.
func parseExpiryKey(k []byte) (exp int64, mapName []byte, backup bool, key []byte, err error) {
	if len(k) < expiryKeyMin {
		return 0, nil, false, nil, fmt.Errorf("%w: expiry index key of %d bytes", errCorruptRecord, len(k))
	}
	exp = int64(binary.BigEndian.Uint64(k))
	rest := k[8:]
	i := bytes.IndexByte(rest, 0)
	if exp <= 0 || i <= 0 || i+1 >= len(rest) || rest[i+1] > 1 {
		return 0, nil, false, nil, fmt.Errorf("%w: malformed expiry index key", errCorruptRecord)
	}
	return exp, rest[:i], rest[i+1] == 1, rest[i+2:], nil
}

// The checks below read bbolt's own file header before bbolt opens the file.
// bbolt validates its meta pages, but it trusts the page ids they hold: a
// truncated file makes it read past the end of the file during Open, which
// panics or faults. These constants mirror go.etcd.io/bbolt/internal/common
// (file format version 2); the layout is fixed by that on-disk format.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16 // id u64, flags u16, count u16, overflow u32
	boltMetaLen      = 64 // magic, version, page size, flags, root (pgid, seq), freelist, pgid, txid, checksum
	boltMetaSumLen   = 56 // bytes covered by the checksum
	boltMinPageSize  = 512
	boltMaxPageSize  = 1 << 24
	boltNoFreelist   = ^uint64(0)
	boltMetaReadSize = boltPageHeader + boltMetaLen
)

// redbMagic starts every file of the redb library, which TopGun's own
// server writes to TOPGUN_REDB_PATH (redb 2.x): this server cannot read
// that format, and says so rather than calling the file foreign.
var redbMagic = [9]byte{'r', 'e', 'd', 'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A}

// errTopGunRedb is the cause of refusing a file of TopGun's own server.
var errTopGunRedb = errors.New("it is a redb-format file, as TopGun's own server writes, which this server cannot read (its redb backend stores a bbolt file)")

// errUnfinished marks a file whose creation stopped inside bbolt's first
// write (a disk that filled, a crash): it holds no data.
var errUnfinished = errors.New("the creation of the file was interrupted before it held any data")

// boltMeta is the part of a bbolt meta page the file check uses.
type boltMeta struct {
	pageSize uint64
	root     uint64
	freelist uint64
	pgid     uint64 // high water mark: pages in use
	txid     uint64
}

// parseBoltMeta decodes the meta page at the start of p. bbolt writes it in
// the machine's byte order.
func parseBoltMeta(p []byte) (boltMeta, error) {
	if len(p) < boltMetaReadSize {
		return boltMeta{}, bolt.ErrInvalid
	}
	m := p[boltPageHeader:boltMetaReadSize]
	ne := binary.NativeEndian
	if ne.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, bolt.ErrInvalid
	}
	if ne.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, bolt.ErrVersionMismatch
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:boltMetaSumLen])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return boltMeta{}, bolt.ErrChecksum
	}
	return boltMeta{
		pageSize: uint64(ne.Uint32(m[8:])),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

// readMeta reads and decodes a meta page at off.
func readMeta(r io.ReaderAt, off int64) (boltMeta, error) {
	var buf [boltMetaReadSize]byte
	n, err := r.ReadAt(buf[:], off)
	if n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			return boltMeta{}, bolt.ErrInvalid
		}
		return boltMeta{}, err
	}
	return parseBoltMeta(buf[:])
}

// checkFile checks that the size bytes readable from r look like a bbolt
// database that bbolt can open and read without reading past the end or
// outside its pages: a valid meta page whose page ids all lie inside the
// file, and a sound page structure (walkTree). An empty file is fine (bbolt
// initialises it). It mirrors how bbolt picks its meta page: page 0, else
// page 1 found by trying page sizes, and the valid one with the highest
// transaction id.
func checkFile(r io.ReaderAt, size int64) error {
	if size == 0 {
		return nil
	}
	var magic [len(redbMagic)]byte
	if n, _ := r.ReadAt(magic[:], 0); n == len(magic) && magic == redbMagic {
		return errTopGunRedb
	}
	m0, err0 := readMeta(r, 0)
	var m1 boltMeta
	err1 := bolt.ErrInvalid
	if err0 == nil && m0.pageSize >= boltMinPageSize && m0.pageSize <= boltMaxPageSize {
		m1, err1 = readMeta(r, int64(m0.pageSize))
	} else {
		// bbolt takes its page size from the first valid meta page it
		// finds here, wherever it is.
		for i := 0; i <= 14; i++ {
			pos := int64(1024) << i
			if pos >= size-1024 {
				break
			}
			if m1, err1 = readMeta(r, pos); err1 == nil {
				if m1.pageSize != uint64(pos) {
					err1 = fmt.Errorf("the meta page at offset %d claims page size %d (%w)", pos, m1.pageSize, bolt.ErrInvalid)
				}
				break
			}
			err1 = bolt.ErrInvalid
		}
	}
	var m boltMeta
	switch {
	case err0 == nil && (err1 != nil || m0.txid >= m1.txid):
		m = m0
	case err1 == nil:
		m = m1
	default:
		err := err0
		if errors.Is(err0, bolt.ErrInvalid) && err1 != nil && !errors.Is(err1, bolt.ErrInvalid) {
			err = err1
		}
		switch {
		case errors.Is(err, bolt.ErrVersionMismatch):
			return fmt.Errorf("unsupported bbolt file format version (%w)", err)
		case errors.Is(err, bolt.ErrChecksum):
			return fmt.Errorf("both bbolt meta pages fail their checksum (%w)", err)
		case errors.Is(err, bolt.ErrInvalid):
			return fmt.Errorf("no bbolt header found (%w)", err)
		}
		return err
	}
	// bbolt addresses pages with the page size of meta page 0 when it is
	// valid, whichever meta page it then uses: the walk must use the same.
	if err0 == nil && m.pageSize != m0.pageSize {
		return damaged("the bbolt meta pages disagree on the page size (%d and %d)", m0.pageSize, m.pageSize)
	}
	ps := m.pageSize
	if ps < boltMinPageSize || ps > boltMaxPageSize || ps&(ps-1) != 0 {
		return damaged("bbolt page size %d is not a power of two between %d and %d", ps, boltMinPageSize, boltMaxPageSize)
	}
	if m.pgid < 3 || m.root < 2 || m.root >= m.pgid || (m.freelist != boltNoFreelist && (m.freelist < 2 || m.freelist >= m.pgid)) {
		return damaged("bbolt meta page holds page ids out of range (root %d, freelist %d, pages %d)", m.root, m.freelist, m.pgid)
	}
	if m.pgid > uint64(size)/ps {
		// bbolt writes transaction 2, the first commit, to meta page 0:
		// while that page still holds transaction 0 (and no meta page a
		// later one), bbolt's first write of the new file was cut short
		// and the file never held data.
		if err0 == nil && m0.txid == 0 && m.txid <= 1 {
			return errUnfinished
		}
		return damaged("file is truncated: it has %d bytes, its header needs %d", size, m.pgid*ps)
	}
	// bbolt reads the root page and the freelist at Open, trusting their
	// headers (a bad freelist count makes it allocate without bound).
	root, err := readPageHeader(r, m.root, ps)
	if err != nil {
		return err
	}
	if root.id != m.root || (root.flags != boltBranchPage && root.flags != boltLeafPage) || m.root+uint64(root.overflow) >= m.pgid {
		return damaged("root page %d is damaged", m.root)
	}
	if m.freelist == boltNoFreelist {
		return walkTree(r, m)
	}
	fl, err := readPageHeader(r, m.freelist, ps)
	if err != nil {
		return err
	}
	if fl.id != m.freelist || fl.flags != boltFreelistPage || m.freelist+uint64(fl.overflow) >= m.pgid {
		return damaged("freelist page %d is damaged", m.freelist)
	}
	capacity := ((uint64(fl.overflow)+1)*ps - boltPageHeader) / 8 // page ids that fit
	count, idx := uint64(fl.count), uint64(0)
	if count == 0xFFFF {
		var buf [8]byte
		if _, err := r.ReadAt(buf[:], int64(m.freelist*ps+boltPageHeader)); err != nil {
			return fmt.Errorf("reading the freelist: %w", err)
		}
		count, idx = binary.NativeEndian.Uint64(buf[:]), 1
	}
	if count > capacity-idx {
		return damaged("freelist page %d claims %d entries, room for %d", m.freelist, count, capacity-idx)
	}
	return walkTree(r, m)
}

// boltPage is a bbolt page header.
type boltPage struct {
	id       uint64
	flags    uint16
	count    uint16
	overflow uint32
}

const (
	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltFreelistPage = 0x10
)

// readPageHeader reads the header of page id; the caller checked that the
// page lies inside the file.
func readPageHeader(r io.ReaderAt, id, pageSize uint64) (boltPage, error) {
	var buf [boltPageHeader]byte
	if _, err := r.ReadAt(buf[:], int64(id*pageSize)); err != nil {
		return boltPage{}, fmt.Errorf("reading page %d: %w", id, err)
	}
	return parsePageHeader(buf[:]), nil
}

// parsePageHeader decodes the page header at the start of p, which holds
// at least boltPageHeader bytes.
func parsePageHeader(p []byte) boltPage {
	ne := binary.NativeEndian
	return boltPage{id: ne.Uint64(p[0:]), flags: ne.Uint16(p[8:]), count: ne.Uint16(p[10:]), overflow: ne.Uint32(p[12:])}
}
