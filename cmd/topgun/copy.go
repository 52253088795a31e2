package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/redb"
)

const copyUsage = `Usage: topgun copy --from SPEC --to SPEC [flags]

Copies every stored record from one storage backend to another: to switch
a server's backend without losing data, or to take an offline backup (a
copy into a new redb file) and restore it (a copy back). Stop the servers
using the source first: a copy is not a snapshot of storage in use.

A SPEC is one of:

  redb:PATH         a redb file (TOPGUN_REDB_PATH); the source must exist
  postgres:URL      a PostgreSQL database (a DATABASE_URL); the table is in
                    the first schema of the URL's search_path, e.g.
                    postgres://user@host/db?search_path=backup
  postgres          the same, with the URL read from DATABASE_URL
  PATH.wasm         a wasm storage plugin; --from-data-dir/--to-data-dir
                    give its data directory, --from-config/--to-config its
                    configuration (a JSON object, as TOPGUN_PLUGIN_CONFIG)

null is refused: it holds nothing to copy and keeps nothing copied.

The source is only read: a redb file is opened read-only. A redb file or a
plugin data directory a running server holds is refused. The destination
must hold no record (the copy never merges) and must be other storage than
the source; PostgreSQL's table is created as the server creates it.

For every map, the primary records and the backup records are copied byte
for byte (values are TopGun's record format, kept as stored) with their
expiration times, in batches of at most --batch-records records and
--batch-bytes bytes. The destination sets created_at and updated_at to the
time of the copy. At the end both sides are read again and each map's
record count and a checksum of its keys, values and expiration times are
compared. A progress line is written to stderr every second, and a summary
line to stdout. The exit status is 0 when the copy is complete and
verified, 1 when it failed or was interrupted (the destination is then
incomplete: empty it, or use a new one, before copying again), 2 for usage
errors.
` + envSettings

// copySide is one parsed SPEC.
type copySide struct {
	flag    string // "--from" or "--to", for messages
	kind    string // redb.Name, postgres.Name or "plugin"
	target  string // redb file, database URL or plugin file
	dataDir string // a plugin's data directory
	config  string // a plugin's configuration, JSON
}

// String names the side for messages, without a database password.
func (s *copySide) String() string {
	switch s.kind {
	case postgres.Name:
		return "postgres:" + postgres.RedactURL(s.target)
	case redb.Name:
		return "redb:" + s.target
	}
	if s.dataDir != "" {
		return s.target + " (data directory " + s.dataDir + ")"
	}
	return s.target
}

// parseCopySpec parses the SPEC of flag; lookupEnv gives DATABASE_URL.
func parseCopySpec(flag, spec string, lookupEnv func(string) (string, bool)) (*copySide, error) {
	s := &copySide{flag: flag}
	switch {
	case spec == "":
		return nil, fmt.Errorf("%s is required: redb:PATH, postgres:URL, postgres or PATH.wasm", flag)
	case spec == "null" || spec == "null:" || strings.HasPrefix(spec, "null:"):
		return nil, fmt.Errorf("%s null: the null backend holds nothing to copy and keeps nothing copied; use redb:PATH, postgres:URL or PATH.wasm", flag)
	case strings.HasPrefix(spec, "redb:"):
		s.kind, s.target = redb.Name, strings.TrimPrefix(spec, "redb:")
		if s.target == "" {
			return nil, fmt.Errorf("%s redb: needs a file, e.g. redb:./topgun.redb", flag)
		}
	case spec == "postgres":
		url, _ := lookupEnv("DATABASE_URL")
		if url == "" {
			return nil, fmt.Errorf("%s postgres reads the database URL from DATABASE_URL, which is not set; set it or give postgres:URL", flag)
		}
		s.kind, s.target = postgres.Name, url
	case strings.HasPrefix(spec, "postgres:") && !strings.HasPrefix(spec, "postgres://"):
		s.kind, s.target = postgres.Name, strings.TrimPrefix(spec, "postgres:")
		if s.target == "" {
			return nil, fmt.Errorf("%s postgres: needs a database URL, e.g. postgres:postgres://user@host:5432/db", flag)
		}
	case strings.Contains(spec, "://"):
		// A bare URL: never echo its password.
		return nil, fmt.Errorf("%s %s is a URL, not a SPEC; write postgres:%s", flag, postgres.RedactURL(spec), postgres.RedactURL(spec))
	case strings.HasSuffix(spec, ".wasm"):
		s.kind, s.target = "plugin", spec
	default:
		return nil, fmt.Errorf("%s %q is not a SPEC: use redb:PATH, postgres:URL, postgres or PATH.wasm", flag, spec)
	}
	if s.kind == postgres.Name {
		if err := postgres.CheckURL(s.target); err != nil {
			return nil, fmt.Errorf("%s: %v", flag, err)
		}
	}
	return s, nil
}

// copyBatchRecords is the default --batch-records: big enough that a
// commit's fixed cost (an fsync, a round trip) is shared by many records.
const copyBatchRecords = 1000

// copyBatchBytes is the default --batch-bytes: one scan page's budget, well
// within a plugin's default request limit.
const copyBatchBytes = abi.DefaultScanBytes

// copyMaxBatchBytes bounds --batch-bytes: a batch is held in memory, and
// PostgreSQL takes no message over 1 GiB.
const copyMaxBatchBytes = 256 << 20

// copyAfterApply, when set by tests, runs after every applied batch.
var copyAfterApply func()

func runCopy(ctx context.Context, c *cli, args []string) int {
	const prog = "topgun copy"
	fs := newFlagSet(prog, copyUsage)
	from := fs.String("from", "", "the storage to copy from (SPEC)")
	to := fs.String("to", "", "the storage to copy into, which must hold no record (SPEC)")
	fromDataDir := fs.String("from-data-dir", "", "data directory of a --from plugin (as TOPGUN_PLUGIN_DATA_DIR)")
	toDataDir := fs.String("to-data-dir", "", "data directory of a --to plugin (as TOPGUN_PLUGIN_DATA_DIR)")
	fromConfig := fs.String("from-config", "", "configuration of a --from plugin, a JSON object (as TOPGUN_PLUGIN_CONFIG)")
	toConfig := fs.String("to-config", "", "configuration of a --to plugin, a JSON object (as TOPGUN_PLUGIN_CONFIG)")
	batchRecords := fs.Int("batch-records", copyBatchRecords, fmt.Sprintf("most records per write to the destination (1 to %d)", abi.MaxBatchOps))
	batchBytes := fs.Int("batch-bytes", copyBatchBytes, fmt.Sprintf("most bytes of keys and values per write to the destination, 1 to %d (a larger record goes alone)", copyMaxBatchBytes))
	noProgress := fs.Bool("no-progress", false, "do not write the progress line")
	logLevel := fs.String("log-level", "warn", "level of the backends' log lines on stderr: trace, debug, info, warn, error or off")
	pos, code, done := c.parseFlags(fs, args)
	if done {
		return code
	}
	if len(pos) > 0 {
		return c.usageError(prog, "unexpected argument %q; give the storage with --from SPEC and --to SPEC", pos[0])
	}
	src, err := parseCopySpec("--from", *from, c.lookupEnv)
	if err != nil {
		return c.usageError(prog, "%v", err)
	}
	dst, err := parseCopySpec("--to", *to, c.lookupEnv)
	if err != nil {
		return c.usageError(prog, "%v", err)
	}
	for _, f := range []struct {
		side    *copySide
		name, v string
		isDir   bool
	}{
		{src, "--from-data-dir", *fromDataDir, true}, {src, "--from-config", *fromConfig, false},
		{dst, "--to-data-dir", *toDataDir, true}, {dst, "--to-config", *toConfig, false},
	} {
		if f.v == "" {
			continue
		}
		if f.side.kind != "plugin" {
			return c.usageError(prog, "%s is for a plugin (PATH.wasm); %s is %s", f.name, f.side.flag, f.side)
		}
		if f.isDir {
			f.side.dataDir = f.v
		} else {
			f.side.config = f.v
		}
	}
	if *batchRecords < 1 || *batchRecords > abi.MaxBatchOps {
		return c.usageError(prog, "--batch-records %d: use 1 to %d", *batchRecords, abi.MaxBatchOps)
	}
	if *batchBytes < 1 || *batchBytes > copyMaxBatchBytes {
		return c.usageError(prog, "--batch-bytes %d: use 1 to %d", *batchBytes, copyMaxBatchBytes)
	}
	lvl := hclog.LevelFromString(*logLevel)
	if lvl == hclog.NoLevel {
		return c.usageError(prog, "--log-level %q is unknown; use trace, debug, info, warn, error or off", *logLevel)
	}
	if err := sameStorage(src, dst); err != nil {
		return c.fail(prog, err)
	}
	// The plugin settings other than the data directory and the
	// configuration come from the environment, parsed as the server
	// parses them.
	var hostOpts *host.Options
	if src.kind == "plugin" || dst.kind == "plugin" {
		if hostOpts, err = c.hostOptions(*logLevel, "TOPGUN_PLUGIN_DATA_DIR", "TOPGUN_PLUGIN_CONFIG"); err != nil {
			return c.usageError(prog, "%v", err)
		}
		for _, s := range []*copySide{src, dst} {
			if s.kind != "plugin" || s.config == "" {
				continue
			}
			cfg, err := host.ParseConfig(s.config)
			if err == nil {
				o := *hostOpts
				o.Config = cfg
				err = o.Validate()
			}
			if err != nil {
				return c.usageError(prog, "%s-config: %v", s.flag, err)
			}
		}
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "topgun", Level: lvl, Output: c.stderr})

	cp := &copier{c: c, src: src, dst: dst, batchRecords: *batchRecords, batchBytes: *batchBytes, start: time.Now()}
	if !*noProgress {
		cp.progress = c.stderr
	}
	srcB, err := openCopySide(ctx, src, hostOpts, log, true)
	if err != nil {
		return c.fail(prog, fmt.Errorf("--from %s: %w", src, err))
	}
	defer srcB.Close()
	cp.srcB = srcB
	if err := cp.checkSource(ctx); err != nil {
		return c.fail(prog, err)
	}
	dstB, err := openCopySide(ctx, dst, hostOpts, log, false)
	if err != nil {
		return c.fail(prog, fmt.Errorf("--to %s: %w", dst, err))
	}
	closeDst := func() error {
		if dstB == nil {
			return nil
		}
		err := dstB.Close()
		dstB = nil
		return err
	}
	defer closeDst()
	cp.dstB = dstB
	if err := cp.check(ctx); err != nil {
		return c.fail(prog, err)
	}
	if dst.kind == "plugin" && hostOpts.MaxRequestBytes > 0 {
		// A batch must fit in one request to the plugin, with room for
		// its encoding.
		cp.batchBytes = max(1, min(cp.batchBytes, hostOpts.MaxRequestBytes/4))
	}
	if err := cp.copy(ctx); err != nil {
		return c.fail(prog, cp.incomplete(ctx, err))
	}
	err = cp.verify(ctx)
	if errors.Is(err, errStampBehind) {
		// cp.maxUpdated now holds the source's last update: a second pass
		// over the records already copied stamps them all after it.
		fmt.Fprintf(c.stderr, "%s: %v (this machine's clock is behind the source's); writing the records again stamped after it, so that clients syncing over HTTP miss none\n", prog, err)
		cp.records, cp.bytes = 0, 0
		if err = cp.copy(ctx); err == nil {
			err = cp.verify(ctx)
		}
	}
	if err != nil {
		return c.fail(prog, cp.incomplete(ctx, err))
	}
	// The destination's last writes are durable at Close for a plugin
	// that buffers (none should, but its error counts).
	if err := closeDst(); err != nil {
		return c.fail(prog, cp.incomplete(ctx, fmt.Errorf("closing the destination: %w", err)))
	}
	fmt.Fprintf(c.stdout, "copied %d maps, %d records, %s from %s to %s in %v; verified\n",
		len(cp.maps), cp.records, byteCount(cp.bytes), src, dst, time.Since(cp.start).Round(time.Millisecond))
	return exitOK
}

// sameStorage refuses a source and a destination that are visibly the
// same file or plugin data directory. Other ways of naming one storage
// twice (two URLs of one table) are found once both are open.
func sameStorage(src, dst *copySide) error {
	if src.kind != dst.kind {
		return nil
	}
	a, b := src.target, dst.target
	if src.kind == "plugin" {
		a, b = src.dataDir, dst.dataDir
		if a == "" || b == "" {
			return nil
		}
	}
	if src.kind == postgres.Name {
		if a == b {
			return fmt.Errorf("--from and --to are both %s: copy into other storage", src)
		}
		return nil
	}
	same := a == b
	if !same {
		if fa, err := os.Stat(a); err == nil {
			if fb, err := os.Stat(b); err == nil {
				same = os.SameFile(fa, fb)
			}
		}
	}
	if !same {
		ea, erra := filepath.Abs(a)
		eb, errb := filepath.Abs(b)
		same = erra == nil && errb == nil && ea == eb
	}
	if same {
		what := "file"
		if src.kind == "plugin" {
			what = "data directory"
		}
		return fmt.Errorf("--from and --to name the same %s (%s and %s): copy into other storage", what, a, b)
	}
	return nil
}

// openCopySide opens one side as the server opens that backend; the
// source's redb file is opened read-only.
func openCopySide(ctx context.Context, s *copySide, hostOpts *host.Options, log hclog.Logger, source bool) (abi.Backend, error) {
	switch s.kind {
	case redb.Name:
		if source {
			return redb.Open(ctx, s.target, &redb.Options{ReadOnly: true, Logger: log.Named("storage.redb")})
		}
		st, err := plugins.Open(ctx, redb.Name, &plugins.Options{RedbPath: s.target, Logger: log})
		if err != nil {
			return nil, err
		}
		return st.Backend(), nil
	case postgres.Name:
		st, err := plugins.Open(ctx, postgres.Name, &plugins.Options{DatabaseURL: s.target, Logger: log})
		if err != nil {
			return nil, err
		}
		return st.Backend(), nil
	}
	o := *hostOpts
	o.DataDir = s.dataDir
	if s.config != "" {
		cfg, err := host.ParseConfig(s.config)
		if err != nil {
			return nil, err
		}
		o.Config = cfg
	}
	st, err := plugins.Open(ctx, s.target, &plugins.Options{Plugin: &o, Logger: log})
	if err != nil {
		return nil, err
	}
	return st.Backend(), nil
}

// mapStats is what the copy and the verification count of one map: its
// records and their bytes (keys and values), and a checksum of its keys,
// values and expiration times in scan order.
type mapStats struct {
	records, bytes int64
	sum            [sha256.Size]byte
}

// copier copies the records of srcB into dstB.
type copier struct {
	c                        *cli
	src, dst                 *copySide
	srcB, dstB               abi.Backend
	batchRecords, batchBytes int
	progress                 io.Writer
	start                    time.Time

	maps []string            // the source's maps, in order
	got  map[string]mapStats // what the copy read of each

	records, bytes int64
	// maxUpdated is the latest updated_at read from the source; every
	// batch is stamped after it (see batchNow).
	maxUpdated int64
	lastNow    int64
	// at is where the copy is: the map and key of the last record read.
	atMap, atKey string
	atBackup     bool
	lastProgress time.Time
}

// check refuses a destination that holds records or is the source, and
// one that keeps nothing.
func (cp *copier) check(ctx context.Context) error {
	if !cp.dstB.Describe().Capabilities.Has(abi.CapDurable) {
		return fmt.Errorf("--to %s: the %q backend does not declare the durable capability, so the copy would not be kept; copy into durable storage", cp.dst, cp.dstB.Describe().Name)
	}
	if a, ok := cp.srcB.(*postgres.Backend); ok {
		if b, ok := cp.dstB.(*postgres.Backend); ok {
			ida, err := a.StorageID(ctx)
			if err != nil {
				return fmt.Errorf("--from %s: %w", cp.src, err)
			}
			idb, err := b.StorageID(ctx)
			if err != nil {
				return fmt.Errorf("--to %s: %w", cp.dst, err)
			}
			if ida == idb {
				return fmt.Errorf("--from %s and --to %s are the same table: copy into other storage (another database, or another schema with search_path)", cp.src, cp.dst)
			}
		}
	}
	dmaps, err := cp.dstB.ListMaps(ctx)
	if err != nil {
		return fmt.Errorf("--to %s: list maps: %w", cp.dst, err)
	}
	if len(dmaps) > 0 {
		return fmt.Errorf("--to %s already holds records (%d maps, the first %q); a copy never merges: copy into empty storage (a new redb file, an empty schema or database, an empty data directory)", cp.dst, len(dmaps), dmaps[0])
	}
	if pg, ok := cp.dstB.(*postgres.Backend); ok {
		// A table of backup records only lists no map.
		n, err := pg.CountRecords(ctx)
		if err != nil {
			return fmt.Errorf("--to %s: count records: %w", cp.dst, err)
		}
		if n > 0 {
			return fmt.Errorf("--to %s already holds records (%d, in maps without a primary record); a copy never merges: copy into empty storage (an empty schema or database)", cp.dst, n)
		}
	}
	return nil
}

// checkSource lists the source's maps and refuses a source with nothing
// to copy, before the destination is opened (and a redb file created).
func (cp *copier) checkSource(ctx context.Context) error {
	var err error
	if cp.maps, err = cp.srcB.ListMaps(ctx); err != nil {
		return fmt.Errorf("--from %s: list maps: %w", cp.src, err)
	}
	if len(cp.maps) == 0 {
		return fmt.Errorf("--from %s holds no record: nothing to copy (is it the right storage?)", cp.src)
	}
	return nil
}

// batchNow is the time a batch is stamped with: the destination sets each
// record's updated_at to it. It is after every updated_at read so far, so
// that clients syncing over HTTP from a point of the source's history get
// the copied records again rather than miss any when this machine's clock
// is behind the source's; verify checks that it is after all of them.
func (cp *copier) batchNow() int64 {
	cp.lastNow = max(time.Now().UnixMilli(), cp.maxUpdated+1, cp.lastNow)
	return cp.lastNow
}

// copy scans every map of the source and applies its records to the
// destination in bounded batches.
func (cp *copier) copy(ctx context.Context) error {
	cp.got = make(map[string]mapStats, len(cp.maps))
	b := &abi.Batch{}
	bytes := 0
	flush := func() error {
		if len(b.Mutations) == 0 {
			return nil
		}
		b.Now = cp.batchNow()
		if err := cp.dstB.Apply(ctx, b); err != nil {
			first, last := b.Mutations[0], b.Mutations[len(b.Mutations)-1]
			return fmt.Errorf("--to %s: writing %d records, from map %q key %q to map %q key %q: %w",
				cp.dst, len(b.Mutations), first.Map, first.Key, last.Map, last.Key, err)
		}
		for i := range b.Mutations {
			cp.records++
			cp.bytes += int64(len(b.Mutations[i].Key) + len(b.Mutations[i].Value))
		}
		b.Mutations = b.Mutations[:0]
		bytes = 0
		if copyAfterApply != nil {
			copyAfterApply()
		}
		cp.report()
		return nil
	}
	for _, m := range cp.maps {
		var h = sha256.New()
		var st mapStats
		for _, backup := range []bool{false, true} {
			err := scanAll(ctx, cp.srcB, m, backup, cp.batchRecords, cp.batchBytes, func(r *abi.Record) error {
				cp.atMap, cp.atKey, cp.atBackup = m, r.Key, backup
				r.Backup = backup
				cp.maxUpdated = max(cp.maxUpdated, r.UpdatedAt)
				st.add(h, r)
				size := r.Size()
				if len(b.Mutations) >= cp.batchRecords || len(b.Mutations) > 0 && bytes+size > cp.batchBytes {
					if err := flush(); err != nil {
						return err
					}
				}
				value := r.Value
				if value == nil {
					value = []byte{}
				}
				b.Put(m, r.Key, backup, value, r.ExpirationTime)
				bytes += size
				return nil
			})
			if err != nil {
				return err
			}
		}
		h.Sum(st.sum[:0])
		cp.got[m] = st
	}
	return flush()
}

// scanError marks an error of reading a backend.
type scanError struct{ err error }

func (e *scanError) Error() string { return e.err.Error() }
func (e *scanError) Unwrap() error { return e.err }

// scanAll calls fn with every record of one map of b, page by page; an
// error of fn stops it and is returned as is.
func scanAll(ctx context.Context, b abi.Backend, m string, backup bool, limit, maxBytes int, fn func(*abi.Record) error) error {
	var cursor []byte
	var last string
	first := true
	for {
		page, err := b.Scan(ctx, abi.ScanRequest{Map: m, Backup: backup, Cursor: cursor, Limit: limit, MaxBytes: maxBytes})
		if err != nil {
			return &scanError{err}
		}
		for i := range page.Records {
			// Keys come in byte order, each once: a key not after the
			// last is a scan going back (or round forever), whose count
			// and checksum would not be the map's.
			if k := page.Records[i].Key; !first && k <= last {
				return &scanError{fmt.Errorf("scan of map %q returned key %q after key %q: keys must come in byte order, each once", m, k, last)}
			}
			first, last = false, page.Records[i].Key
			if err := fn(&page.Records[i]); err != nil {
				return err
			}
		}
		if page.Cursor == nil {
			return nil
		}
		if len(page.Records) == 0 {
			// A page that does not advance would loop forever.
			return &scanError{fmt.Errorf("scan of map %q returned an empty page with a cursor", m)}
		}
		cursor = page.Cursor
	}
}

// add counts r in st and its checksum h.
func (st *mapStats) add(h hash.Hash, r *abi.Record) {
	st.records++
	st.bytes += int64(r.Size())
	var n [8]byte
	flag := byte(0)
	if r.Backup {
		flag = 1
	}
	h.Write([]byte{flag})
	binary.BigEndian.PutUint64(n[:], uint64(len(r.Key)))
	h.Write(n[:])
	h.Write([]byte(r.Key))
	binary.BigEndian.PutUint64(n[:], uint64(len(r.Value)))
	h.Write(n[:])
	h.Write(r.Value)
	binary.BigEndian.PutUint64(n[:], uint64(r.ExpirationTime))
	h.Write(n[:])
}

// readStats counts one map of b as the copy counted it, calling each
// with every record.
func readStats(ctx context.Context, b abi.Backend, m string, limit, maxBytes int, each func(*abi.Record)) (mapStats, error) {
	h := sha256.New()
	var st mapStats
	for _, backup := range []bool{false, true} {
		err := scanAll(ctx, b, m, backup, limit, maxBytes, func(r *abi.Record) error {
			r.Backup = backup
			st.add(h, r)
			each(r)
			return nil
		})
		if err != nil {
			return st, err
		}
	}
	h.Sum(st.sum[:0])
	return st, nil
}

// verify reads both sides again and compares every map's count and
// checksum with what the copy read; it also checks that every copied
// record is stamped after the source's last update (see batchNow).
func (cp *copier) verify(ctx context.Context) error {
	smaps, err := cp.srcB.ListMaps(ctx)
	if err != nil {
		return fmt.Errorf("verify: --from %s: list maps: %w", cp.src, err)
	}
	dmaps, err := cp.dstB.ListMaps(ctx)
	if err != nil {
		return fmt.Errorf("verify: --to %s: list maps: %w", cp.dst, err)
	}
	if !slices.Equal(smaps, cp.maps) {
		return fmt.Errorf("verify: the source's maps changed during the copy (%d maps before, %d after): is a server writing to it? stop it and copy again", len(cp.maps), len(smaps))
	}
	if !slices.Equal(dmaps, cp.maps) {
		return fmt.Errorf("verify: the destination holds %d maps, the source %d", len(dmaps), len(cp.maps))
	}
	var srcMax int64
	dstMin := int64(-1)
	for _, m := range cp.maps {
		want := cp.got[m]
		s, err := readStats(ctx, cp.srcB, m, cp.batchRecords, cp.batchBytes, func(r *abi.Record) { srcMax = max(srcMax, r.UpdatedAt) })
		if err != nil {
			return fmt.Errorf("verify: --from %s: map %q: %w", cp.src, m, err)
		}
		if s != want {
			return fmt.Errorf("verify: map %q of the source changed during the copy (%d records when copied, %d now): is a server writing to it? stop it and copy again", m, want.records, s.records)
		}
		d, err := readStats(ctx, cp.dstB, m, cp.batchRecords, cp.batchBytes, func(r *abi.Record) {
			if dstMin < 0 || r.UpdatedAt < dstMin {
				dstMin = r.UpdatedAt
			}
		})
		if err != nil {
			return fmt.Errorf("verify: --to %s: map %q: %w", cp.dst, m, err)
		}
		switch {
		case d.records != want.records:
			return fmt.Errorf("verify: map %q has %d records in the destination, %d in the source", m, d.records, want.records)
		case d != want:
			return fmt.Errorf("verify: map %q differs between the source and the destination (%d records each; their keys, values or expiration times differ)", m, d.records)
		}
	}
	if pg, ok := cp.srcB.(*postgres.Backend); ok {
		// Records of maps ListMaps leaves out were never scanned: the
		// copy is not complete while the table holds any.
		var copied int64
		for _, m := range cp.maps {
			copied += cp.got[m].records
		}
		n, err := pg.CountRecords(ctx)
		if err != nil {
			return fmt.Errorf("verify: --from %s: count records: %w", cp.src, err)
		}
		if n != copied {
			return fmt.Errorf("verify: --from %s holds %d records, the copy reached %d: %d records are in maps that list no primary record or whose names are longer than %d bytes, which no scan reaches", cp.src, n, copied, n-copied, abi.MaxMapNameBytes)
		}
	}
	if dstMin >= 0 && dstMin <= srcMax {
		return fmt.Errorf("%w: a copied record is stamped %d, the source's last update %d", errStampBehind, dstMin, srcMax)
	}
	return nil
}

// errStampBehind: a copied record's updated_at is not after every
// updated_at of the source, which happens when this machine's clock is
// behind the source's last updates. runCopy then writes the records again,
// stamped after all of them.
var errStampBehind = errors.New("the copy's time stamps are not after the source's last update")

// incomplete explains a failure: where the copy stopped and that the
// destination is incomplete.
func (cp *copier) incomplete(ctx context.Context, err error) error {
	var se *scanError
	if errors.As(err, &se) {
		where := fmt.Sprintf("map %q", cp.atMap)
		if cp.atMap != "" {
			where += fmt.Sprintf(" after key %q", cp.atKey)
			if cp.atBackup {
				where += " (backup records)"
			}
		}
		err = fmt.Errorf("--from %s: reading %s: %w", cp.src, where, se.err)
	}
	why := "the copy failed"
	if ctx.Err() != nil {
		why = "the copy was interrupted"
	}
	return fmt.Errorf("%w\n%s after %d records: the destination %s is incomplete; empty it (or use new storage) before copying again", err, why, cp.records, cp.dst)
}

// report writes the progress line, at most once a second.
func (cp *copier) report() {
	if cp.progress == nil {
		return
	}
	now := time.Now()
	if cp.lastProgress.IsZero() {
		cp.lastProgress = cp.start
	}
	if now.Sub(cp.lastProgress) < time.Second {
		return
	}
	cp.lastProgress = now
	fmt.Fprintf(cp.progress, "topgun copy: %d records, %s copied in %v; at map %q\n",
		cp.records, byteCount(cp.bytes), now.Sub(cp.start).Round(time.Second), cp.atMap)
}

// byteCount formats n bytes for people.
func byteCount(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
