package host

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"unicode/utf8"
)

// pluginFile is a plugin file as the host read it.
type pluginFile struct {
	bin  []byte // the module to compile
	size int64  // the file's size
	sum  string // the file's SHA-256, hex
	// elided is set when bin lacks the payload of some custom sections
	// (see readPluginFile): bin is then not the file.
	elided bool
}

// elideMin is the smallest custom section payload readPluginFile leaves
// out when asked to: smaller ones cost little to keep, and a module with
// none left out compiles through the caches as the server's load does.
const elideMin = 1 << 20

// readPluginFile reads the plugin file at path, refusing anything but a
// regular file of at most MaxPluginFileBytes before reading it: a FIFO
// would block the read forever and a device such as /dev/zero would be
// read without end. The read itself is bounded too, in case the file grows
// after the check.
//
// With elide, the payload of each custom section of at least elideMin
// bytes, other than the name section, is hashed but not kept: the section
// stays, with its name and the payload's first byte (wazero refuses a
// module ending in an empty payload). Neither the runtime nor the
// meter reads such a payload (the meter drops debug sections, and the host
// keeps no other custom section), so the module compiles to the same code,
// exports and imports, while a file of one large custom section costs its
// size in memory several times over when kept. Anything the walk does not
// read as a well-formed custom section is kept as it is, so that a
// malformed module is refused as it would be whole.
func readPluginFile(prefix, path string, elide bool) (pluginFile, error) {
	var pf pluginFile
	st, err := os.Stat(path)
	if err != nil {
		return pf, fmt.Errorf("%s: %w", prefix, err)
	}
	if st.IsDir() {
		return pf, fmt.Errorf("%s: %s is a directory, not a wasm file", prefix, path)
	}
	if !st.Mode().IsRegular() {
		return pf, fmt.Errorf("%s: %s is not a regular file (%s), not a wasm file", prefix, path, st.Mode().Type())
	}
	if st.Size() > MaxPluginFileBytes {
		return pf, fmt.Errorf("%s: file is %d bytes, the limit is %d", prefix, st.Size(), MaxPluginFileBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return pf, fmt.Errorf("%s: %w", prefix, err)
	}
	defer f.Close()
	h := sha256.New()
	counted := &countingHash{h: h}
	r := io.TeeReader(io.LimitReader(f, MaxPluginFileBytes+1), counted)
	if elide {
		pf.bin, pf.elided, err = readElided(bufio.NewReaderSize(r, 64<<10))
	} else {
		// Sized by the file: io.ReadAll's growing buffer took up to
		// twice its size.
		pf.bin, err = readSized(r, st.Size())
	}
	if err != nil {
		return pf, fmt.Errorf("%s: %w", prefix, err)
	}
	if counted.n > MaxPluginFileBytes {
		return pf, fmt.Errorf("%s: file is over %d bytes, the limit", prefix, MaxPluginFileBytes)
	}
	pf.size = counted.n
	pf.sum = hex.EncodeToString(h.Sum(nil))
	return pf, nil
}

// countingHash is a hash that counts the bytes written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// readSized reads r to its end into a buffer of size (plus a little, to
// see the end) that grows only if r holds more.
func readSized(r io.Reader, size int64) ([]byte, error) {
	b := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

// readElided reads a module from r, leaving out the payloads readPluginFile
// describes.
func readElided(r *bufio.Reader) (out []byte, elided bool, err error) {
	// rest keeps the remainder of r as it is.
	rest := func() ([]byte, bool, error) {
		b := bytes.NewBuffer(out)
		_, err := b.ReadFrom(r)
		return b.Bytes(), elided, err
	}
	out = make([]byte, 0, 64<<10)
	head := make([]byte, len(wasmMagic))
	n, err := io.ReadFull(r, head)
	out = append(out, head[:n]...)
	if err != nil || !bytes.Equal(head, wasmMagic) {
		return rest()
	}
	for {
		id, err := r.ReadByte()
		if err == io.EOF {
			return out, elided, nil
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, id)
		size, raw, err := readU32(r)
		out = append(out, raw...)
		if err != nil {
			return rest()
		}
		if id != customSection {
			if out, err = copyN(out, r, int64(size)); err != nil {
				return rest()
			}
			continue
		}
		nameLen, nameRaw, err := readU32(r)
		if err != nil || uint64(len(nameRaw))+uint64(nameLen) > uint64(size) {
			out = append(out, nameRaw...)
			return rest()
		}
		// Read as the file holds it, not allocated as claimed.
		name, err := copyN(nil, r, int64(nameLen))
		payload := int64(size) - int64(len(nameRaw)) - int64(nameLen)
		if err != nil || !utf8.Valid(name) || string(name) == "name" || payload < elideMin {
			out = append(out, nameRaw...)
			out = append(out, name...)
			if err != nil {
				return rest()
			}
			if out, err = copyN(out, r, payload); err != nil {
				return rest()
			}
			continue
		}
		first, err := r.ReadByte()
		got := int64(0)
		if err == nil {
			got, err = io.CopyN(io.Discard, r, payload-1)
			got++
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		if got < payload {
			// The file ends inside the payload: keep the section's
			// header as it was, so that the module is refused for
			// ending early, with the same offsets.
			out = append(out, nameRaw...)
			out = append(out, name...)
			return out, elided, nil
		}
		out = out[:len(out)-1-len(raw)]
		out = append(out, customSection)
		out = binary.AppendUvarint(out, uint64(len(nameRaw))+uint64(nameLen)+1)
		out = append(out, nameRaw...)
		out = append(out, name...)
		out = append(out, first)
		elided = true
	}
}

// customSection is the id of a wasm custom section.
const customSection = 0

// readU32 reads an unsigned LEB128 of at most 5 bytes as the runtime
// does, returning the bytes read as well.
func readU32(r io.ByteReader) (v uint32, raw []byte, err error) {
	for i := 0; i < 5; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, raw, err
		}
		raw = append(raw, c)
		if c < 0x80 {
			if i == 4 && c&0xf0 != 0 {
				return 0, raw, errors.New("u32 overflow")
			}
			return v | uint32(c)<<(7*i), raw, nil
		}
		v |= uint32(c&0x7f) << (7 * i)
	}
	return 0, raw, errors.New("u32 overflow")
}

// copyN appends the next n bytes of r to out, or as many as r holds: the
// buffer grows with what is read, not with what a section claims.
func copyN(out []byte, r io.Reader, n int64) ([]byte, error) {
	b := bytes.NewBuffer(out)
	k, err := io.CopyN(b, r, n)
	if err == nil && k < n {
		err = io.ErrUnexpectedEOF
	}
	return b.Bytes(), err
}
