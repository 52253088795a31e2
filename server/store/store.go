package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/sparselog"
	"github.com/topgun-go/topgun/server/record"
)

// Clock is the server's hybrid logical clock (package hlc implements it).
type Clock interface {
	// Now returns a new timestamp, greater than every one seen before.
	Now() record.Timestamp
	// Update merges a remote timestamp into the clock. It fails, leaving the
	// clock unchanged, when ts lies further ahead of the wall clock than the
	// allowed drift.
	Update(ts record.Timestamp) error
	// NodeID is the node id Now stamps with.
	NodeID() string
}

// Options configure a Store. The zero value of a field means its default.
type Options struct {
	// Clock stamps server-side changes and checks client stamps. Required.
	Clock Clock
	// CacheBytes bounds the value cache (default 64 MiB; negative disables it).
	CacheBytes int64
	// TombstoneTTL: LWW tombstones older than this are removed and clients
	// are told to prune theirs. Default 7 days; negative keeps them forever.
	TombstoneTTL time.Duration
	// ReapInterval is how often expired records are looked for (default 1s).
	ReapInterval time.Duration
	// GCInterval is how often old tombstones are collected (default 1h).
	GCInterval time.Duration
	// GCStartDelay: the first collection runs at a random time between
	// this and twice this after Open (default 1 min, at most GCInterval),
	// then every GCInterval. A server restarted more often than
	// GCInterval still collects, and a fleet restarted together does not
	// collect all at once.
	GCStartDelay time.Duration
	// MaxCommitOps caps the mutations of one group commit (default 4096).
	MaxCommitOps int
	// FeedBuffer is each change-feed subscriber's buffer in commits (default 1024).
	FeedBuffer int
	// ScanBytes is the page budget of the start-up index rebuild (default 4 MiB).
	ScanBytes int
	// CommitTimeout bounds the backend work of one group commit (default
	// 30s): the batch with the re-reads after it, and, on their own, the
	// re-reads the applier makes before it. A commit past it fails like
	// one whose connection broke: its writers get the error,
	// unacknowledged, and since the backend may have applied it all the
	// same, its keys are re-read and its outcome settled later (see
	// settleUnsure). It also bounds each read a merge makes, so that a
	// database behind a dead link cannot hold every write until TCP gives
	// up, which may be never.
	CommitTimeout time.Duration
	// WallClock returns the current time; tests replace it. Default time.Now.
	WallClock func() time.Time
	Logger    hclog.Logger
	// MaxIndexBytes bounds the in-memory index (IndexBytes; 0, the
	// default: no bound). The index holds every key storage holds, so
	// without a bound a backend listing endless keys at Open, or clients
	// writing endless new keys, grow it until the process runs out of
	// memory. Past it (by more than an eighth and 8 MiB) Open fails, and
	// a write that would add to the index is rejected with
	// abi.CodeResourceExhausted: a put, remove or OR op on a key it does
	// not hold, an LWW write stamped by a node id it does not hold, and, on
	// shared storage, an OR op adding a tag (see admitKey). Other writes to
	// keys it holds, and the collection of tombstones, still pass. Stats
	// reports the index's size, this bound and the ops rejected at it.
	MaxIndexBytes int64
	// SettingName names a setting in the store's errors (such as
	// "TOPGUN_MAX_INDEX_MB"): a program that sets MaxIndexBytes another
	// way names its own setting instead, as host.Options.SettingName
	// does for the host. nil, or a "" answer, keeps topgun-server's name.
	SettingName func(env string) string
	// OnCommit, when set, is called after each group commit's backend
	// batch with its number of records, the time the backend took and its
	// error (nil once durable). It runs on the commit path: it must be
	// fast and must not call the Store. The server feeds its metrics
	// from it.
	OnCommit func(records int, took time.Duration, err error)
}

// DefaultOptions returns the defaults (without a Clock).
func DefaultOptions() *Options {
	return &Options{
		CacheBytes:    64 << 20,
		TombstoneTTL:  7 * 24 * time.Hour,
		ReapInterval:  time.Second,
		GCInterval:    time.Hour,
		GCStartDelay:  time.Minute,
		MaxCommitOps:  4096,
		FeedBuffer:    1024,
		ScanBytes:     4 << 20,
		CommitTimeout: 30 * time.Second,
		WallClock:     time.Now,
	}
}

// Validate checks the options and fills in defaults.
func (o *Options) Validate() error {
	d := DefaultOptions()
	if o.Clock == nil {
		return errors.New("store: options need a Clock")
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = d.CacheBytes
	}
	if o.TombstoneTTL == 0 {
		o.TombstoneTTL = d.TombstoneTTL
	}
	if o.ReapInterval <= 0 {
		o.ReapInterval = d.ReapInterval
	}
	if o.GCInterval <= 0 {
		o.GCInterval = d.GCInterval
	}
	if o.GCStartDelay <= 0 {
		o.GCStartDelay = d.GCStartDelay
	}
	if o.MaxCommitOps <= 0 {
		o.MaxCommitOps = d.MaxCommitOps
	}
	if o.MaxCommitOps > abi.MaxBatchOps {
		return fmt.Errorf("store: MaxCommitOps %d is above the backend batch limit %d", o.MaxCommitOps, abi.MaxBatchOps)
	}
	if o.FeedBuffer <= 0 {
		o.FeedBuffer = d.FeedBuffer
	}
	if o.MaxIndexBytes < 0 {
		return fmt.Errorf("store: MaxIndexBytes %d is negative; use 0 for no bound", o.MaxIndexBytes)
	}
	if o.ScanBytes <= 0 {
		o.ScanBytes = d.ScanBytes
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = d.CommitTimeout
	}
	if o.WallClock == nil {
		o.WallClock = d.WallClock
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return nil
}

// ErrClosed is returned by every operation after Close.
var ErrClosed = errors.New("store: closed")

// lwwMeta is what the index keeps per LWW key: enough to merge and to hash,
// nothing of the value. 16 bytes; the expiry of the few keys that have one
// is kept beside it, in mapState.exp.
type lwwMeta struct {
	millis  uint64
	counter uint32
	node    uint32 // index into Store.nodes; tombstoneBit set for a tombstone
}

const tombstoneBit = 1 << 31

func (m lwwMeta) tombstone() bool { return m.node&tombstoneBit != 0 }

// orMeta is what the index keeps per OR-Map key; the earliest entry expiry
// of the keys that have one is kept beside it, in mapState.exp.
type orMeta struct {
	hash uint32 // the client's OR-Map leaf item hash
}

type mapState struct {
	lww *trie[lwwMeta]
	or  *trie[orMeta]
	// exp holds the expiration of the keys (LWW or OR) that have one, so
	// expired keys are found without walking every key (expiredInIndex).
	exp map[string]int64
	// orTagBytes is what orTags holds by the index's count.
	orTagBytes int64
	// orTags holds, on shared storage only, the fingerprints of each
	// indexed OR key's entry tags and tombstones (sorted), so that a
	// re-read announces what changed, not the whole key (see changesSince).
	orTags map[string][]uint64
}

// Store is the record store: TopGun's CRDT maps on top of an abi.Backend,
// with an in-memory index and Merkle tries, a bounded value cache, group
// commit, TTL expiry, tombstone collection and a change feed.
type Store struct {
	be    abi.Backend
	opts  Options
	log   hclog.Logger
	skips sparselog.Log
	clock Clock
	cache *cache
	feed  *feed
	// rereads and unsureDrops: the warnings of failed commits' records
	// that cannot be re-read (repairIndex) and of failed commits given up
	// (dropUnsure), at most one per sparselog.Every each: while storage is
	// down, clients cause them at the rate they send writes.
	rereads, unsureDrops sparselog.Log

	mu    sync.RWMutex // guards maps and nodes; written only by the committer
	maps  map[string]*mapState
	nodes []string
	nodeI map[string]uint32
	// nodeRefs counts the indexed LWW keys stamped by each node; a node id
	// no key uses any more is forgotten and its slot (in nodeFree) reused:
	// node ids come from clients, and kept forever they grew with writes,
	// not with data.
	nodeRefs []uint32
	nodeFree []uint32
	// indexBytes is the index's size (IndexBytes): written with mu held
	// for writing (or by rebuild), read without it.
	indexBytes atomic.Int64
	// partsFreed counts, ever growing, the bytes of the index's parts
	// (maps, tries' upper levels, leaves, node ids) that installs forgot:
	// a write admitted while a part was indexed adds nothing for it, so
	// until the commits in flight then are installed, the room its
	// release made is not free (see admitKey).
	partsFreed atomic.Int64
	// indexRefused counts the ops rejected at MaxIndexBytes, as Apply
	// returned them (Stats).
	indexRefused atomic.Uint64

	// repair holds the keys of failed commits whose stored state is not
	// known (the batch may have been applied); guarded by mu, written only
	// by the applier. Merges read them from storage, not the index, until
	// a re-read or a commit settles them.
	repair map[cacheKey]struct{}
	// unsure holds, oldest first, failed commits whose batch storage may
	// hold all the same, until a re-read tells (applier only; see
	// settleUnsure).
	unsure      []*txn
	unsureBytes int // the encodings the txns in unsure hold
	// unsureN is len(unsure) for the committer, whose merges note what
	// they read from storage (txn.loaded) only while a failed commit is
	// kept: it is set before that commit is marked settled, and a merge
	// reads a key of it from storage only after.
	unsureN atomic.Int32

	// pruned is the greatest tombstone cut-off published (see
	// PruneBefore); nil until a collection published one.
	pruned atomic.Pointer[record.Timestamp]

	// watchLater: re-reads of a failed commit's keys, queued on watchq
	// once that commit is settled (applier only).
	watchLater []abi.Changed
	mergedHook func() // tests: called after each request is merged
	// gcWalkHook, tests: called for each old tombstone the collection's
	// walk of the index finds, with the read lock held.
	gcWalkHook func()
	// maxCommitBytes is maxCommitBytes (tests lower it).
	maxCommitBytes int
	// merged counts the requests merged into the txn being filled (reset
	// when it is handed to the applier); see regroup.
	merged atomic.Int64
	// restartedAt and restartMark: set at Open when commit times restart
	// from the wall clock (see ClockRestart); never changed after.
	restartedAt int64
	restartMark uint32

	// stampMu orders stamping a batch's commit time against SyncPoint.
	stampMu   sync.Mutex
	lastStamp int64 // commit times never go back, even if the wall clock does
	// maxStored is the greatest record timestamp rebuild read, and
	// maxCommitted the latest commit time: stored at Open (see
	// resumeClocks), then of each commit (under stampMu; see SyncPoint).
	maxStored    record.Timestamp
	maxCommitted int64
	applying     int64 // the commit time of the batch being applied, 0 for none
	// applyingMark is the txn the applier works on, nil once that txn's
	// callers are answered; see CommitStalled. One pointer, so that a
	// probe never pairs one txn's start with the next one's allowance.
	applyingMark atomic.Pointer[commitMark]
	shared       bool // other processes commit to the same storage
	// checked applies commits on shared storage (nil: unchecked); watchq
	// gathers the other processes' commits (nil: not heard), which
	// stopWatch stops hearing. See shared.go.
	checked   abi.CheckedApplier
	watchq    *watchQueue
	stopWatch context.CancelFunc

	reqs    chan *request
	applyq  chan *txn
	seq     atomic.Uint64
	closing chan struct{}
	stopped chan struct{} // closed once Close has stopped the goroutines
	wg      sync.WaitGroup
	once    sync.Once
	closed  atomic.Bool

	// txnReady (capacity 1) holds a token while the committer has a txn
	// waiting for the applier: a re-read pass the applier runs on its
	// own gives way to it (see applier).
	txnReady chan struct{}
}

// Open builds the index by scanning the backend with bounded memory and
// starts the committer and the TTL and GC loops.
func Open(ctx context.Context, be abi.Backend, opts *Options) (*Store, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if !be.Describe().Capabilities.Has(abi.CapAtomicBatch) {
		return nil, fmt.Errorf("store: backend %q does not declare atomic batches, which the store needs", be.Describe().Name)
	}
	s := &Store{
		be: be, opts: o, log: o.Logger, clock: o.Clock,
		shared:         be.Describe().Capabilities.Has(abi.CapShared),
		maxCommitBytes: maxCommitBytes,
		cache:          newCache(o.CacheBytes),
		feed:           newFeed(),
		maps:           map[string]*mapState{},
		nodeI:          map[string]uint32{},
		repair:         map[cacheKey]struct{}{},
		reqs:           make(chan *request, 1024),
		applyq:         make(chan *txn),
		txnReady:       make(chan struct{}, 1),
		closing:        make(chan struct{}),
		stopped:        make(chan struct{}),
	}
	if s.shared {
		if err := s.openShared(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	n, skipped, err := s.rebuild(ctx)
	if err != nil {
		if s.stopWatch != nil {
			s.stopWatch()
		}
		return nil, err
	}
	s.resumeClocks()
	s.log.Info("index rebuilt", "maps", len(s.maps), "records", n, "skipped", skipped, "took", time.Since(start).Round(time.Millisecond))
	s.wg.Add(3)
	go s.committer()
	go s.applier()
	go s.housekeeping()
	if s.watchq != nil {
		s.wg.Add(1)
		go s.refresher()
	}
	return s, nil
}

// rebuild scans every map's primary records and indexes them. It notes
// the latest commit time and record timestamp stored (see resumeClocks),
// and counts the undecodable records it skips.
func (s *Store) rebuild(ctx context.Context) (total, skipped int, err error) {
	names, err := s.be.ListMaps(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: list maps: %w", err)
	}
	full := false
	for _, name := range names {
		err := s.scanPages(ctx, name, 4096, func(r *abi.Record) bool {
			if !s.shared { // other processes' commit times are their clocks'
				s.maxCommitted = max(s.maxCommitted, r.UpdatedAt)
			}
			rv, err := record.Decode(r.Value)
			if err != nil {
				// A record we cannot read must not stop the server; it is
				// left untouched in storage and skipped.
				s.warnSkipped("skipping undecodable record", "map", name, "key", r.Key, "error", err)
				skipped++
				return true
			}
			s.noteStored(&rv)
			s.index(name, r.Key, &rv, r.ExpirationTime)
			total++
			if max := s.opts.MaxIndexBytes; max > 0 && s.indexBytes.Load() > max+rebuildSlack(max) {
				full = true
				return false
			}
			return true
		})
		if err != nil {
			return total, skipped, err
		}
		if full {
			return total, skipped, s.indexFull(total)
		}
	}
	return total, skipped, nil
}

// noteStored keeps the greatest timestamp of a stored record (rebuild).
func (s *Store) noteStored(rv *record.RecordValue) {
	if rv.Kind == record.KindLWW {
		if rv.LWW.Timestamp.Compare(s.maxStored) > 0 {
			s.maxStored = rv.LWW.Timestamp
		}
		return
	}
	for i := range rv.ORMap.Records {
		if ts := rv.ORMap.Records[i].Timestamp; ts.Compare(s.maxStored) > 0 {
			s.maxStored = ts
		}
	}
}

// maxCommitAhead is how far ahead of the wall clock a commit time is
// still taken for when the commit was made (Unix ms): commit times never
// go back (SyncPoint), so after the wall clock stepped back they run
// ahead of it, by as much as it stepped.
const maxCommitAhead = 3600_000

// resumeClocks makes a reopened store continue its clocks past the data:
// commit times (SyncPoint, Since) never go below those stored, and the HLC
// stamps after every stored timestamp, so that a write the server stamps
// (a REMOVE without a record) is not older than the record it replaces
// when the wall clock is behind the stored stamps (a client's clock ahead
// within the drift bound, or the wall clock stepped back across the
// restart). A stored timestamp beyond the drift bound is not merged (it
// would drag the clock, and through it the clients' clocks, ahead).
//
// Commit times resume too, unless further ahead of the wall clock than
// maxCommitAhead (stored while the wall clock was that far ahead):
// resumed, every later commit would be stamped at that time until the
// wall clock caught up, across restarts too (each such commit stores it
// again), and Since could not page those commits apart.
func (s *Store) resumeClocks() {
	if now := s.now(); s.maxCommitted > now+maxCommitAhead {
		s.log.Warn("the storage holds commit times far ahead of the wall clock; commit times restart from the wall clock",
			"latest", s.maxCommitted, "now", now)
		s.restartedAt, s.restartMark = now, rand.Uint32()|1
	} else {
		// Past it: SyncPoint may have given out the latest commit time
		// itself, and a commit stamped at it would not be after it.
		s.lastStamp = s.maxCommitted + 1
	}
	if s.maxStored.IsZero() {
		return
	}
	if err := s.clock.Update(s.maxStored); err != nil {
		s.log.Warn("the storage holds timestamps further ahead of the wall clock than the allowed drift; "+
			"the server's own stamps may be older than them until the clock catches up", "latest", s.maxStored.String(), "error", err)
	}
}

func (s *Store) mapState(name string, create bool) *mapState {
	ms := s.maps[name]
	if ms == nil && create {
		ms = &mapState{lww: newTrie[lwwMeta](), or: newTrie[orMeta](), exp: map[string]int64{}}
		if s.shared {
			ms.orTags = map[string][]uint64{}
		}
		s.maps[name] = ms
	}
	return ms
}

// nodeIndex returns the index of a node id, counting one more key stamped
// by it (releaseNode undoes that).
func (s *Store) nodeIndex(id string) uint32 {
	if i, ok := s.nodeI[id]; ok {
		s.nodeRefs[i]++
		return i
	}
	var i uint32
	if n := len(s.nodeFree); n > 0 {
		i = s.nodeFree[n-1]
		s.nodeFree = s.nodeFree[:n-1]
		s.nodes[i] = id
		s.nodeRefs[i] = 1
	} else {
		i = uint32(len(s.nodes))
		s.nodes = append(s.nodes, id)
		s.nodeRefs = append(s.nodeRefs, 1)
	}
	s.nodeI[id] = i
	s.indexBytes.Add(indexNodeBytes + int64(len(id)))
	return i
}

// releaseNode counts one key fewer stamped by the node of m.
func (s *Store) releaseNode(m lwwMeta) {
	i := m.node &^ tombstoneBit
	if s.nodeRefs[i]--; s.nodeRefs[i] == 0 {
		s.indexBytes.Add(-indexNodeBytes - int64(len(s.nodes[i])))
		s.partsFreed.Add(indexNodeBytes + int64(len(s.nodes[i])))
		delete(s.nodeI, s.nodes[i])
		s.nodes[i] = ""
		s.nodeFree = append(s.nodeFree, i)
	}
}

func (s *Store) lwwTimestamp(m lwwMeta) record.Timestamp {
	return record.Timestamp{Millis: m.millis, Counter: m.counter, NodeID: s.nodes[m.node&^tombstoneBit]}
}

// index installs the state of one key (caller holds s.mu for writing, or
// is the rebuild before any reader exists). rv nil removes the key.
func (s *Store) index(mapName, key string, rv *record.RecordValue, exp int64) {
	ms := s.maps[mapName]
	var before, lwwParts, orParts int64
	if ms != nil {
		before = ms.bytes(mapName)
		lwwParts, orParts = ms.lww.partBytes(), ms.or.partBytes()
	} else if ms = s.mapState(mapName, rv != nil); ms == nil {
		return
	}
	defer func() {
		var after int64
		freed := max(lwwParts-ms.lww.partBytes(), 0) + max(orParts-ms.or.partBytes(), 0)
		if s.maps[mapName] == ms {
			after = ms.bytes(mapName)
		} else if before != 0 {
			freed = lwwParts + orParts + indexMapBytes + int64(len(mapName))
		}
		// An overwrite changes neither: no atomic write for it.
		if after != before {
			s.indexBytes.Add(after - before)
		}
		if freed != 0 {
			s.partsFreed.Add(freed)
		}
	}()
	oldL, hadL := ms.lww.get(key)
	oldO, hadO := ms.or.get(key)
	if hadL && (rv == nil || rv.Kind != record.KindLWW) {
		ms.lww.remove(key, lwwItemHash(key, s.lwwTimestamp(oldL)))
		delete(ms.exp, key)
		s.releaseNode(oldL)
	}
	if hadO && (rv == nil || rv.Kind == record.KindLWW) {
		ms.or.remove(key, oldO.hash)
		delete(ms.exp, key)
		hadO = false
	}
	if ms.orTags != nil {
		if tags, ok := ms.orTags[key]; ok {
			ms.orTagBytes -= indexTagsBytes + 8*int64(cap(tags))
			delete(ms.orTags, key)
		}
	}
	if rv == nil {
		if ms.lww.size == 0 && ms.or.size == 0 {
			// Forget a map left with no keys (its tombstones collected):
			// map names come from clients, and state kept for every name
			// ever written would only grow.
			delete(s.maps, mapName)
		}
		return
	}
	switch rv.Kind {
	case record.KindLWW:
		ts := rv.LWW.Timestamp
		m := lwwMeta{millis: ts.Millis, counter: ts.Counter, node: s.nodeIndex(ts.NodeID)}
		if exp != 0 {
			ms.exp[key] = exp
		} else if hadL {
			delete(ms.exp, key)
		}
		if rv.LWW.Value.IsNull() {
			m.node |= tombstoneBit
		}
		var oldItem uint32
		if hadL {
			oldItem = lwwItemHash(key, s.lwwTimestamp(oldL))
		}
		ms.lww.set(key, m, hadL, oldItem, lwwItemHash(key, ts))
		if hadL {
			s.releaseNode(oldL) // after taking the new one: it may be the same
		}
	default:
		// TopGun's legacy orTombstones shape holds tombstones only (its
		// ORMap has no records): it is indexed like a current key with
		// tombstones only, below, so that stale clients receive them.
		h, ok := orItemHash(key, &rv.ORMap)
		if !ok && len(rv.ORMap.Tombstones) == 0 {
			if hadO {
				ms.or.remove(key, oldO.hash)
				delete(ms.exp, key)
			}
			return
		}
		// A key with tombstones only stays in the trie with item hash 0,
		// which changes no node hash (Mix(0) == 0): a client in sync, which
		// keeps no leaf for it, sees the same hashes, while its bucket is
		// still listed, so a client that missed the removal walks down to
		// the leaf and receives the tombstones (as from TopGun's server,
		// whose leaf covers them). Without it, such a client finds the
		// bucket missing, pushes the entry back, and never learns.
		m := orMeta{hash: h}
		ms.or.set(key, m, hadO, oldO.hash, m.hash)
		if exp != 0 {
			ms.exp[key] = exp
		} else if hadO {
			delete(ms.exp, key)
		}
		if ms.orTags != nil {
			tags := orTagSet(&rv.ORMap)
			ms.orTags[key] = tags
			ms.orTagBytes += indexTagsBytes + 8*int64(cap(tags))
		}
	}
}

func (s *Store) now() int64 { return s.opts.WallClock().UnixMilli() }

// Subscribe returns a subscription to the change feed.
func (s *Store) Subscribe() *Subscription { return s.feed.subscribe(s.opts.FeedBuffer) }

// Clock returns the store's HLC.
func (s *Store) Clock() Clock { return s.clock }

// Backend returns the backend the store persists to.
func (s *Store) Backend() abi.Backend { return s.be }

// Maps returns the names of the maps the index holds.
func (s *Store) Maps() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.maps))
	for n := range s.maps {
		out = append(out, n)
	}
	return out
}

// Root returns the Merkle root of a map's LWW or OR index (0 when empty).
func (s *Store) Root(mapName string, kind Kind) uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ms := s.maps[mapName]
	if ms == nil {
		return 0
	}
	if kind == KindOR {
		return ms.or.root()
	}
	return ms.lww.root()
}

// Buckets returns the non-empty children of the node at path (0–2 hex
// digits), keyed by hex digit. ok is false when path names no internal node.
func (s *Store) Buckets(mapName string, kind Kind, path string) (map[string]uint32, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ms := s.maps[mapName]
	if ms == nil {
		if len(path) <= 2 {
			return map[string]uint32{}, true
		}
		return nil, false
	}
	if kind == KindOR {
		return ms.or.buckets(path)
	}
	return ms.lww.buckets(path)
}

// Leaf returns the records of the depth-3 leaf at path (3 hex digits),
// tombstones and expired records included, as a client that holds them
// hashes them. ok is false when path is not a leaf path.
func (s *Store) Leaf(ctx context.Context, mapName string, kind Kind, path string) ([]Entry, bool, error) {
	s.mu.RLock()
	ms := s.maps[mapName]
	var keys []string
	ok := len(path) == 3
	if ms != nil {
		if kind == KindOR {
			keys, ok = ms.or.leafKeys(path)
		} else {
			keys, ok = ms.lww.leafKeys(path)
		}
	}
	s.mu.RUnlock()
	if !ok || len(keys) == 0 {
		return nil, ok, nil
	}
	entries, err := s.load(ctx, mapName, keys)
	return entries, true, err
}

// Entries returns the records of those of keys that the map's LWW or OR
// index holds, each once, tombstones and expired records included, as Leaf
// returns them. It reads only those keys, not their leaves. The index is
// looked up a chunk of keys at a time, so that a long list does not hold
// commits back.
func (s *Store) Entries(ctx context.Context, mapName string, kind Kind, keys []string) ([]Entry, error) {
	seen := make(map[string]struct{}, min(len(keys), 1024))
	var held []string
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 1024)]
		keys = keys[len(chunk):]
		s.mu.RLock()
		ms := s.maps[mapName]
		for _, k := range chunk {
			if _, dup := seen[k]; dup || ms == nil {
				continue
			}
			seen[k] = struct{}{}
			var ok bool
			if kind == KindOR {
				_, ok = ms.or.get(k)
			} else {
				_, ok = ms.lww.get(k)
			}
			if ok {
				held = append(held, k)
			}
		}
		s.mu.RUnlock()
	}
	if len(held) == 0 {
		return nil, nil
	}
	return s.load(ctx, mapName, held)
}

// Get returns the live record of a key. Expired records and LWW tombstones
// are reported as absent.
func (s *Store) Get(ctx context.Context, mapName, key string) (Entry, bool, error) {
	es, err := s.load(ctx, mapName, []string{key})
	if err != nil || len(es) == 0 {
		return Entry{}, false, err
	}
	e := es[0]
	if !s.live(&e) {
		return Entry{}, false, nil
	}
	return e, true, nil
}

// live reports whether a record is visible to reads: not an LWW tombstone,
// not expired, and for OR-Maps with at least one unexpired entry. It trims
// expired OR entries from e.
func (s *Store) live(e *Entry) bool {
	now := s.now()
	switch e.Record.Kind {
	case record.KindLWW:
		if e.Record.LWW.Value.IsNull() {
			return false
		}
		return e.ExpirationTime == 0 || e.ExpirationTime > now
	default:
		recs := e.Record.ORMap.Records[:0:0]
		for _, r := range e.Record.ORMap.Records {
			if !orEntryExpired(&r, now) {
				recs = append(recs, r)
			}
		}
		e.Record.ORMap.Records = recs
		return len(recs) > 0
	}
}

func orEntryExpired(r *record.ORMapEntry, now int64) bool {
	return r.TTLMs > 0 && expiresAt(r.Timestamp.Millis, r.TTLMs) <= now
}

// Scan calls f with every live record of a map, in the backend's key order,
// reading pages from the backend; f returning false stops the scan.
func (s *Store) Scan(ctx context.Context, mapName string, f func(e *Entry) bool) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.scanPages(ctx, mapName, 0, func(r *abi.Record) bool {
		e, err := storedEntry(r)
		if err != nil {
			return true
		}
		return !s.live(&e) || f(&e)
	})
}

// storedEntry decodes a record read from storage, with its stored size.
func storedEntry(r *abi.Record) (Entry, error) {
	rv, err := record.Decode(r.Value)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Key: r.Key, Record: rv, ExpirationTime: r.ExpirationTime, Size: len(r.Key) + len(r.Value)}, nil
}

// scanPages calls f with every primary record of a map, page by page with
// the scan byte budget, until f returns false.
//
// Keys come in strictly increasing byte order and every page but the last
// holds a record, as abi.Backend.Scan promises: a backend breaking that (a
// faulty plugin) fails the scan rather than making it loop forever.
func (s *Store) scanPages(ctx context.Context, mapName string, limit int, f func(r *abi.Record) bool) error {
	var cursor []byte
	var last string
	started := false
	for {
		page, err := s.be.Scan(ctx, abi.ScanRequest{Map: mapName, Cursor: cursor, Limit: limit, MaxBytes: s.opts.ScanBytes})
		if err != nil {
			return fmt.Errorf("store: scan map %q: %w", mapName, err)
		}
		if len(page.Cursor) > 0 && len(page.Records) == 0 {
			return fmt.Errorf("store: scan map %q: the backend returned an empty page that is not the last", mapName)
		}
		for i := range page.Records {
			r := &page.Records[i]
			if started && r.Key <= last {
				return fmt.Errorf("store: scan map %q: the backend returned key %q after %q, out of order", mapName, r.Key, last)
			}
			started, last = true, r.Key
			if !utf8.ValidString(r.Key) {
				// No client can have written it (the wire decoder refuses
				// such keys), and a client's decoder refuses a frame
				// naming it: a query answering it dropped the connection.
				s.warnSkipped("skipping a record whose key is not valid UTF-8", "map", mapName, "key", r.Key)
				continue
			}
			if !f(r) {
				return nil
			}
		}
		// An empty cursor would ask for the map's start again: a backend
		// that ends its last page with one must not make this loop forever.
		if len(page.Cursor) == 0 {
			return nil
		}
		cursor = page.Cursor
	}
}

// load reads records through the cache, in the order of keys, skipping
// absent ones.
func (s *Store) load(ctx context.Context, mapName string, keys []string) ([]Entry, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.loadRaw(ctx, mapName, keys)
}

// loadRaw is load without the closed check, for the committer's final drain.
func (s *Store) loadRaw(ctx context.Context, mapName string, keys []string) ([]Entry, error) {
	gen := s.cache.generation()
	out := make([]Entry, 0, len(keys))
	var miss []string
	for _, k := range keys {
		if v, ok := s.cache.get(cacheKey{mapName, k}); ok {
			if v.present {
				out = append(out, Entry{Key: k, Record: v.rv, ExpirationTime: v.exp})
			}
			continue
		}
		miss = append(miss, k)
	}
	recs, err := s.getRecords(ctx, mapName, miss)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		r := &recs[i]
		rv, err := record.Decode(r.Value)
		if err != nil {
			s.warnSkipped("skipping undecodable record", "map", mapName, "key", r.Key, "error", err)
			continue
		}
		out = append(out, Entry{Key: r.Key, Record: rv, ExpirationTime: r.ExpirationTime})
		s.cache.fill(cacheKey{mapName, r.Key}, &entryValue{rv: rv, exp: r.ExpirationTime, present: true}, gen)
	}
	return out, nil
}

// getRecords reads keys of a map from the backend, 1000 per call.
func (s *Store) getRecords(ctx context.Context, mapName string, keys []string) ([]abi.Record, error) {
	var out []abi.Record
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		recs, err := s.be.Get(ctx, mapName, false, keys[:n])
		if err != nil {
			return nil, fmt.Errorf("store: get from %q: %w", mapName, err)
		}
		if err := answersAsked(mapName, keys[:n], recs); err != nil {
			return nil, err
		}
		if out == nil && n == len(keys) {
			return recs, nil // one call: no copy
		}
		out = append(out, recs...)
		keys = keys[n:]
	}
	return out, nil
}

// answersAsked checks that every record a get returned is of a key it
// asked for: a faulty plugin's record of another key was taken for the
// asked key's, and a merge stored that key's entries in it.
func answersAsked(mapName string, keys []string, recs []abi.Record) error {
	if i := abi.UnaskedKey(keys, recs); i >= 0 {
		return abi.Errorf(abi.CodeInternal, "store: get from %q: the backend answered with key %q, which was not asked for", mapName, recs[i].Key)
	}
	return nil
}

// closingContext is the context of the store's own goroutines' requests,
// cancelled when Close begins: Close waits for those goroutines, and a
// request submitted after the committer stopped is answered only once
// Close returns.
func (s *Store) closingContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// CommitStalled reports an error while the commit being applied has
// waited for the storage backend longer than d plus the time its size may
// take (commitAllowance): a backend that answers reads can still hold
// every write (a lock another database session holds), which a read alone
// does not show, while a large commit in progress is no fault.
func (s *Store) CommitStalled(d time.Duration) error {
	m := s.applyingMark.Load()
	if m == nil {
		return nil
	}
	if waited := time.Since(m.since); waited > d+m.allow {
		return fmt.Errorf("store: a commit has waited %s for the storage backend (%s allowed for its size)", waited.Round(time.Millisecond), m.allow.Round(time.Millisecond))
	}
	return nil
}

// commitMark is when the applier took a txn and the time that txn's size
// may take (commitAllowance).
type commitMark struct {
	since time.Time
	allow time.Duration
}

// The time CommitStalled allows a commit beyond its d for its size: about
// three times what the slowest backend measured on the reference machine
// takes per record (bbolt, random keys: 17 µs), and 10 MiB/s for its
// bytes, so that storage that is stuck, not a large group commit, fails
// readiness. The largest commit (abi.MaxBatchOps records, maxCommitBytes)
// is allowed about 11 s more; a small one stuck is still seen at once.
const (
	stallPerRecord = 50 * time.Microsecond
	stallPerMiB    = 100 * time.Millisecond
)

func commitAllowance(records, bytes int) time.Duration {
	return time.Duration(records)*stallPerRecord + time.Duration(bytes)*stallPerMiB/(1<<20)
}

// Close stops the loops, waits for in-flight commits and closes the feed.
// It does not close the backend, which the caller owns.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		if s.stopWatch != nil {
			s.stopWatch()
		}
		close(s.closing)
		s.wg.Wait()
		close(s.stopped)
		s.feed.close()
	})
	return nil
}

// entryValue is a cached record state; present false caches an absence.
type entryValue struct {
	rv      record.RecordValue
	exp     int64
	present bool
}

// The in-memory sizes of the structs a cached record is made of: a decoded
// value takes this much per element (80 bytes for a Value), so counting
// 32 let arrays of small numbers use two and a half times the cache's
// bound (TOPGUN_CACHE_MB).
const (
	valueBytes   = int(unsafe.Sizeof(record.Value{}))
	fieldBytes   = int(unsafe.Sizeof(record.Field{}))
	orEntryBytes = int(unsafe.Sizeof(record.ORMapEntry{}))
	entryBytes   = int(unsafe.Sizeof(entryValue{}))
)

// size bounds the heap bytes a cached record state holds.
func (v *entryValue) size() int {
	if !v.present {
		return 0
	}
	n := entryBytes
	switch v.rv.Kind {
	case record.KindLWW:
		n += valueSize(v.rv.LWW.Value) + len(v.rv.LWW.Timestamp.NodeID)
	default:
		n += orEntryBytes * cap(v.rv.ORMap.Records)
		for i := range v.rv.ORMap.Records {
			r := &v.rv.ORMap.Records[i]
			n += valueSize(r.Value) + len(r.Tag) + len(r.Timestamp.NodeID)
		}
		n += 16 * cap(v.rv.ORMap.Tombstones)
		for _, t := range v.rv.ORMap.Tombstones {
			n += len(t)
		}
	}
	return n
}

// valueSize is the heap bytes a value holds beyond its own Value struct.
func valueSize(v record.Value) int {
	switch v.Type() {
	case record.TypeString, record.TypeBytes:
		return v.Len() // Bytes() would copy the value to measure it
	case record.TypeArray:
		items := v.Items()
		n := valueBytes * cap(items)
		for _, it := range items {
			n += valueSize(it)
		}
		return n
	case record.TypeMap:
		fields := v.Fields()
		n := fieldBytes * cap(fields)
		for _, f := range fields {
			n += len(f.Key) + valueSize(f.Value)
		}
		return n
	}
	return 0
}
