package host

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
)

// compileCache is wazero's on-disk compilation cache plus the host's own
// record of what its entries hold.
//
// The cache holds native code the server runs. wazero checks a CRC of the
// code when it reads an entry, but not the function offsets stored beside
// it, so disk damage there could make a call jump into the middle of the
// code. The host keeps the size and CRC-32C of every whole entry it has
// seen wazero write (in <dir>/topgun-sums, one file per compiled module
// listing its entries),
// checks a module's entries before wazero reads them and removes one that
// does not match. An entry no record covers (left by a crash, or by a
// server from before the records) is removed too. wazero then compiles
// the module again and the host records the new entry.
//
// Server processes may share the directory. Entries and records are only
// ever replaced whole (a synced temporary file renamed into place). A
// sweep, which removes unrecorded entries, holds an exclusive lock on
// <dir>/topgun-sums/<wazero's directory>/lock, and a compile holds a
// shared one from before wazero looks for the entry until the entry it
// wrote is recorded: no process removes an entry another has written and
// not yet recorded. An entry another process writes between this one's
// check and wazero's read is used as just written (it was compiled from
// the same module). Records are kept per wazero directory: builds of
// another wazero version (whose entries have the same names but other
// contents) keep their own, so they never take each other's entries for
// damaged ones.
//
// The host finds wazero's directory by the same build information wazero
// names it after; a build that overrides wazero's version string with
// -ldflags -X names it differently, and the cache is then refused at load
// (newCompileCache) when the host's name does not exist.
type compileCache struct {
	wz      wazero.CompilationCache
	entries string // wazero's version-specific directory of entries
	sums    string // the host's records of the entries in entries
	lock    string // the file locked against sweeps (see compile)
	metered string // metered copies of plugins (see meteredDirName)

	// mu orders sweeps, which remove entries no record covers, and guards
	// the compiles in flight in this process: inflight counts them, shared
	// releases the shared file lock they hold together, and since is when
	// the oldest began. It is never held across a compile: a tenant whose
	// module takes minutes to compile must not hold up every other load.
	mu       sync.Mutex
	inflight int
	shared   func()
	since    time.Time
	// modules holds a lock per module being compiled (under modulesMu):
	// loads of one file at once (tenants starting together) compile it
	// once, the others then find it in wazero's memory.
	modulesMu sync.Mutex
	modules   map[string]*moduleLock
	// recordMu serialises rewriting one module's record in this process.
	recordMu sync.Mutex
	// beforeCompile, when set (by tests), runs as a compile starts.
	beforeCompile func()
	// kept holds the compiled modules of the loads last closed, most
	// recent last, at most keptModules distinct ones (see keep).
	keptMu sync.Mutex
	kept   []keptModule
}

// keptModules bounds the modules whose compiled code the process keeps
// once no load uses them.
const keptModules = 2

type keptModule struct {
	key string
	mod wazero.CompiledModule
}

// keep takes the compiled module of a closed load. wazero's engine, which
// every runtime of the cache shares, frees a module's code once each load
// that compiled it has closed it; a reload then reads the code back from
// disk, several times slower than from memory. The few modules last closed
// are kept for a reload (topgun plugin test, a tenant restarted), older
// ones freed, so that tenants and plugin builds coming and going do not
// pile up in memory.
func (c *compileCache) keep(key string, mod wazero.CompiledModule) {
	c.keptMu.Lock()
	defer c.keptMu.Unlock()
	for i, k := range c.kept {
		if k.key == key {
			// The reference kept already holds the code.
			_ = mod.Close(context.Background())
			c.kept = append(slices.Delete(c.kept, i, i+1), k)
			return
		}
	}
	c.kept = append(c.kept, keptModule{key, mod})
	if len(c.kept) > keptModules {
		_ = c.kept[0].mod.Close(context.Background())
		c.kept = slices.Delete(c.kept, 0, 1)
	}
}

const sumsDirName = "topgun-sums"

// moduleLock is held by the compile of one module in this process.
type moduleLock struct {
	held  chan struct{}
	users int
}

// lockModule waits, as long as ctx allows, until no other compile of
// module runs in this process, and returns the function that lets the
// next one in.
func (c *compileCache) lockModule(ctx context.Context, module string) (unlock func(), err error) {
	c.modulesMu.Lock()
	if c.modules == nil {
		c.modules = map[string]*moduleLock{}
	}
	l := c.modules[module]
	if l == nil {
		l = &moduleLock{held: make(chan struct{}, 1)}
		c.modules[module] = l
	}
	l.users++
	c.modulesMu.Unlock()
	leave := func() {
		c.modulesMu.Lock()
		if l.users--; l.users == 0 {
			delete(c.modules, module)
		}
		c.modulesMu.Unlock()
	}
	select {
	case l.held <- struct{}{}:
		return func() { <-l.held; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, fmt.Errorf("waiting for another load compiling the same module: %w", context.Cause(ctx))
	}
}

// newCompileCache opens the cache in dir, which must exist.
func newCompileCache(dir string) (*compileCache, error) {
	wz, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, err
	}
	c := &compileCache{
		wz:      wz,
		entries: filepath.Join(dir, "wazero-"+wazeroVersion()+"-"+runtime.GOARCH+"-"+runtime.GOOS),
		metered: filepath.Join(dir, meteredDirName),
	}
	// One directory of records per wazero directory: a build of another
	// wazero version names its entries alike but fills them differently.
	c.sums = filepath.Join(dir, sumsDirName, filepath.Base(c.entries))
	c.lock = filepath.Join(c.sums, "lock")
	// wazero creates its directory up front; if it is not where the host
	// looks, the entries could not be checked, so the cache is refused.
	if st, err := os.Stat(c.entries); err != nil || !st.IsDir() {
		_ = wz.Close(context.Background())
		return nil, fmt.Errorf("wazero did not create its entry directory %s where the host checks entries", c.entries)
	}
	for _, d := range []string{filepath.Dir(c.sums), c.sums, c.metered} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			_ = wz.Close(context.Background())
			return nil, err
		}
	}
	for _, d := range []string{c.entries, filepath.Dir(c.sums), c.sums, c.metered} {
		if err := checkCacheSubdir(d); err != nil {
			_ = wz.Close(context.Background())
			return nil, err
		}
	}
	return c, nil
}

// wazeroVersion is the version wazero names its entry directory after
// (wazero's internal/version.GetWazeroVersion, which reads the same build
// information).
func wazeroVersion() string {
	missing := func(v string) bool { return v == "" || v == "(devel)" }
	v := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if strings.Contains(dep.Path, "github.com/tetratelabs/wazero") {
				v = dep.Version
			}
		}
		if missing(v) {
			v = info.Main.Version
		}
	}
	if missing(v) {
		return "dev"
	}
	return v
}

// compile compiles code on rt, whose config uses c.wz, after checking the
// module's cache entries, and records the entries the compile wrote.
func (c *compileCache) compile(ctx context.Context, rt wazero.Runtime, code []byte, log hclog.Logger) (wazero.CompiledModule, error) {
	sum := sha256.Sum256(code)
	module := hex.EncodeToString(sum[:])

	// The file lock orders sweeps (exclusive) and compiles (shared) across
	// the processes sharing the directory. In this process, the compiles
	// in flight hold one shared lock together; a load that starts beside
	// them does not wait for them (the exclusive lock would) but sweeps
	// sparing the entries written since the oldest of them began, which
	// may be theirs and not yet recorded.
	unlockModule, err := c.lockModule(ctx, module)
	if err != nil {
		return nil, err
	}
	defer unlockModule()
	c.mu.Lock()
	if c.inflight == 0 {
		unlock, locked, err := c.lockFile(ctx, true, log)
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.check(module, log)
		c.sweep(log, time.Time{})
		unlock()
		c.shared = func() {}
		if locked { // else warned about: not waited for twice
			if c.shared, _, err = c.lockFile(ctx, false, log); err != nil {
				c.mu.Unlock()
				return nil, err
			}
		}
		c.since = time.Now()
	} else {
		c.check(module, log)
		c.sweep(log, c.since)
	}
	c.inflight++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.inflight--; c.inflight == 0 {
			c.shared()
			c.shared = nil
		}
		c.mu.Unlock()
	}()
	before := c.listEntries()
	if c.beforeCompile != nil {
		c.beforeCompile()
	}
	mod, err := compileModule(ctx, rt, code)
	if err != nil {
		return nil, err
	}
	var fresh []string
	for _, e := range c.listEntries() {
		if !slices.Contains(before, e) {
			fresh = append(fresh, e)
		}
	}
	if len(fresh) > 0 {
		// Entries of other compiles running beside this one may be among
		// them; recording them here too costs a check, never safety.
		if err := c.record(module, fresh); err != nil {
			// Unrecorded, they could later pass the sweep under another
			// module's record unchecked: remove them; the next start
			// compiles again.
			log.Warn("cannot record the checksum of a compilation cache entry; removing the entry", "dir", c.sums, "error", err)
			for _, e := range fresh {
				_ = os.Remove(filepath.Join(c.entries, e))
			}
		}
	}
	return mod, nil
}

// lockFile takes the lock shared by the processes using the directory. A
// lock that cannot be taken (other than for ctx) is warned about and done
// without: the cache then works as it would without other processes.
func (c *compileCache) lockFile(ctx context.Context, exclusive bool, log hclog.Logger) (unlock func(), locked bool, err error) {
	unlock, err = lockFile(ctx, c.lock, exclusive)
	if err == nil {
		return unlock, true, nil
	}
	if ctx.Err() != nil {
		return nil, false, fmt.Errorf("waiting for the compilation cache lock %s: %w", c.lock, err)
	}
	log.Warn("cannot lock the compilation cache against other processes; they may remove the entry this one writes before it is recorded", "lock", c.lock, "error", err)
	return func() {}, false, nil
}

// check verifies the entries recorded for module, removing those that do
// not match their sum, and drops vanished ones from the record.
func (c *compileCache) check(module string, log hclog.Logger) {
	c.recordMu.Lock()
	defer c.recordMu.Unlock()
	rec := c.readRecord(filepath.Join(c.sums, module))
	kept := map[string]string{}
	for entry, want := range rec {
		got, err := fileSum(filepath.Join(c.entries, entry))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			log.Warn("cannot read a compilation cache entry; removing it", "entry", entry, "error", err)
			_ = os.Remove(filepath.Join(c.entries, entry))
		case got != want:
			log.Warn("a compilation cache entry does not match its checksum (damaged on disk); removing it, the plugin is compiled again",
				"entry", filepath.Join(c.entries, entry))
			_ = os.Remove(filepath.Join(c.entries, entry))
		default:
			kept[entry] = want
		}
	}
	if len(kept) != len(rec) {
		if err := c.writeRecord(module, kept); err != nil {
			// The record still names entries that are gone or removed:
			// the sweep then removes nothing it should not keep.
			log.Warn("cannot update a compilation cache record", "dir", c.sums, "error", err)
		}
	}
}

// sweep removes the entries no record covers (nothing vouches for what
// they hold), anything but a regular file under an entry's name, records
// whose entries are all gone, and temporary files a crash left behind.
// With spare set, it keeps unrecorded entries written since then (less a
// second, for the file system's coarse clock): compiles in flight may
// have written them.
func (c *compileCache) sweep(log hclog.Logger, spare time.Time) {
	entries := map[string]bool{}
	des, _ := os.ReadDir(c.entries)
	for _, d := range des {
		name, path := d.Name(), filepath.Join(c.entries, d.Name())
		switch {
		case isHexName(name) && d.Type().IsRegular():
			entries[name] = true
		case isHexName(name):
			log.Warn("removing what is not a regular file from the compilation cache", "path", path)
			_ = os.RemoveAll(path)
		case strings.HasSuffix(name, ".tmp"):
			removeStale(path, d)
		}
	}
	covered := map[string]bool{}
	records, _ := os.ReadDir(c.sums)
	for _, r := range records {
		path := filepath.Join(c.sums, r.Name())
		if !isHexName(r.Name()) {
			if strings.HasSuffix(r.Name(), ".tmp") {
				removeStale(path, r)
			}
			continue
		}
		live := false
		for entry := range c.readRecord(path) {
			covered[entry] = true
			live = live || entries[entry]
		}
		if !live {
			c.removeDeadRecord(path)
		}
	}
	metered, _ := os.ReadDir(c.metered)
	for _, d := range metered {
		if strings.HasSuffix(d.Name(), ".tmp") {
			removeStale(filepath.Join(c.metered, d.Name()), d)
		}
	}
	for e := range entries {
		if covered[e] {
			continue
		}
		path := filepath.Join(c.entries, e)
		if !spare.IsZero() {
			if st, err := os.Stat(path); err != nil || st.ModTime().After(spare.Add(-time.Second)) {
				continue
			}
		}
		log.Warn("removing a compilation cache entry that has no checksum record (left by a crash or an older server); its plugin is compiled again when loaded", "entry", path)
		_ = os.Remove(path)
	}
}

// removeDeadRecord removes the record at path unless one of its entries
// exists now. The sweep lists the entries before it reads the records, and
// a compile ending in between (beside the sweep, in this process or
// another) writes its entry and then the record, which would look dead:
// removed, it would leave the entry unchecked.
func (c *compileCache) removeDeadRecord(path string) {
	c.recordMu.Lock() // no record of this process is rewritten meanwhile
	defer c.recordMu.Unlock()
	for entry := range c.readRecord(path) {
		if _, err := os.Lstat(filepath.Join(c.entries, entry)); err == nil {
			return
		}
	}
	_ = os.Remove(path)
}

// removeStale removes a temporary file old enough that no writer (of this
// process or another) can still be filling it.
func removeStale(path string, d os.DirEntry) {
	if info, err := d.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
		_ = os.Remove(path)
	}
}

// record adds entries, hashed now, to module's record.
func (c *compileCache) record(module string, entries []string) error {
	c.recordMu.Lock()
	defer c.recordMu.Unlock()
	rec := c.readRecord(filepath.Join(c.sums, module))
	for _, e := range entries {
		// wazero renames a finished, synced file into place, so what is
		// there is what it wrote.
		if s, err := fileSum(filepath.Join(c.entries, e)); err == nil {
			rec[e] = s
		}
	}
	return c.writeRecord(module, rec)
}

// listEntries lists wazero's entries (named by the hex of a SHA-256; its
// temporary files are not).
func (c *compileCache) listEntries() []string {
	des, _ := os.ReadDir(c.entries)
	var out []string
	for _, d := range des {
		if d.Type().IsRegular() && isHexName(d.Name()) {
			out = append(out, d.Name())
		}
	}
	return out
}

// readRecord reads lines of "<entry> <sum>" (see fileSum); a damaged line
// is skipped, which at worst costs a compile.
func (c *compileCache) readRecord(path string) map[string]string {
	rec := map[string]string{}
	f, err := openRegular(path)
	if err != nil {
		return rec
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		entry, sum, ok := strings.Cut(sc.Text(), " ")
		if ok && isHexName(entry) && sum != "" {
			rec[entry] = sum
		}
	}
	return rec
}

// writeRecord replaces module's record atomically (or removes it when
// empty).
func (c *compileCache) writeRecord(module string, rec map[string]string) error {
	path := filepath.Join(c.sums, module)
	if len(rec) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	var b strings.Builder
	for _, e := range slices.Sorted(maps.Keys(rec)) {
		fmt.Fprintf(&b, "%s %s\n", e, rec[e])
	}
	return writeFileAtomic(c.sums, module, []byte(b.String()))
}

// writeFileAtomic writes data to dir/name through a synced temporary file
// renamed into place (removed on failure; a sweep removes those a crash
// leaves), so a reader sees the old file or the new one, never part of it.
func writeFileAtomic(dir, name string, data ...[]byte) error {
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return err
	}
	for _, d := range data {
		if err == nil {
			_, err = tmp.Write(d)
		}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}

// fileSum is "<size> <CRC-32C>" of the file. The directory is the server
// user's alone (checkCacheDir), so what the sum must catch is damage, not
// forgery: a CRC finds it and, in hardware, reads a 17 MB entry in about a
// millisecond, where a SHA-256 would add a tenth to a warm load.
func fileSum(path string) (string, error) {
	f, err := openRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %08x", n, h.Sum32()), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openRegular opens path for reading if it is a regular file. Opening a
// FIFO blocks until a writer comes, which would hang the load for good;
// the check of a module's entries runs before the sweep that removes what
// is not a regular file.
func openRegular(path string) (*os.File, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return os.Open(path)
}

func isHexName(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}
