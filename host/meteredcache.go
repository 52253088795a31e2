package host

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/topgun-go/topgun/host/internal/meter"
)

// The metered copy of a sandboxed plugin is kept beside wazero's entries
// (in <dir>/topgun-metered), so that a start with a warm cache skips the
// rewrite as it skips the compile: the rewrite of a Go plugin takes 20-25
// ms, a sixth of a warm load. A copy is named by what it depends on (the
// file's SHA-256, the meter's version, its budget and stack limit, the
// table caps) and
// ends with its counts and a CRC-32C; a copy that does not match its CRC
// is removed and the plugin metered again.
const meteredDirName = "topgun-metered"

// meteredTrailer is the bytes after the code: check sites, functions
// (uint32 each) and the CRC-32C of everything before the CRC.
const meteredTrailer = 12

func meteredKey(fileSum string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|meter %d|budget %d|stack %d|tables %d of %d",
		fileSum, meter.Version, meterBudget, meterStackLimit, meter.MaxTables, meter.MaxTableEntries))
	return hex.EncodeToString(h[:])
}

// loadMetered returns the metered copy cached for the plugin file whose
// SHA-256 is fileSum.
func (c *compileCache) loadMetered(fileSum string) (code []byte, info meter.Info, ok bool) {
	path := filepath.Join(c.metered, meteredKey(fileSum))
	f, err := openRegular(path)
	if err != nil {
		return nil, info, false
	}
	var b []byte
	st, err := f.Stat()
	if err == nil {
		b, err = readSized(f, st.Size())
	}
	f.Close()
	if err != nil {
		return nil, info, false
	}
	n := len(b) - meteredTrailer
	if n < 8 || crc32.Checksum(b[:n+8], castagnoli) != binary.LittleEndian.Uint32(b[n+8:]) {
		_ = os.Remove(path) // damaged: meter again
		return nil, info, false
	}
	info.Checks = int(binary.LittleEndian.Uint32(b[n:]))
	info.Functions = int(binary.LittleEndian.Uint32(b[n+4:]))
	return b[:n:n], info, true
}

// storeMetered caches the metered copy of the plugin file whose SHA-256 is
// fileSum.
func (c *compileCache) storeMetered(fileSum string, code []byte, info meter.Info) error {
	// The trailer is written after the code, not appended to a copy of it.
	t := make([]byte, 0, meteredTrailer)
	t = binary.LittleEndian.AppendUint32(t, uint32(info.Checks))
	t = binary.LittleEndian.AppendUint32(t, uint32(info.Functions))
	t = binary.LittleEndian.AppendUint32(t, crc32.Update(crc32.Checksum(code, castagnoli), castagnoli, t))
	return writeFileAtomic(c.metered, meteredKey(fileSum), code, t)
}
