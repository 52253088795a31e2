package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/goroutine"
)

// Several servers may share the table. Each needs to hear of the others'
// commits (Watch) and to write only over what it merged against
// (ApplyChecked); PostgreSQL carries both: every Apply sends a NOTIFY on a
// channel of the table's schema, naming the records it changed, delivered
// to the listeners when the transaction commits.

var (
	_ abi.Watcher        = (*Backend)(nil)
	_ abi.CheckedApplier = (*Backend)(nil)
)

// maxNotice bounds a notification's payload (PostgreSQL's limit is 8000
// bytes).
const maxNotice = 7000

// notice is a notification's payload: the origin backend and the records
// it changed, all of a map when K and B are empty, or everything with A.
// B holds, in base64, the keys whose base64 is shorter than their JSON
// string (which takes six bytes for each "<", "&" or control character):
// every valid key then fits in a notice beside any valid map name. A
// server that does not know B re-reads the whole map, as before.
type notice struct {
	O string   `json:"o"`
	M string   `json:"m,omitempty"`
	K []string `json:"k,omitempty"`
	B [][]byte `json:"b,omitempty"`
	A bool     `json:"a,omitempty"`
}

func newOrigin() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// channelName is the notification channel of the table in schema: one per
// schema (channels are per database), short enough for an identifier.
func channelName(schema string) string {
	h := fnv.New64a()
	h.Write([]byte(schema))
	return "topgun_maps_" + hex.EncodeToString(h.Sum(nil))
}

// Channel is the notification channel the backend's commits are announced
// on (see Watch).
func (b *Backend) Channel() string { return b.channel }

// notices are the payloads naming the primary records of ids (sorted by
// record), each under maxNotice: a map whose names do not fit is named
// whole, and everything is named when even that does not fit.
func (b *Backend) notices(ids []recordID) []string {
	var out []string
	emit := func(n *notice) {
		p, _ := json.Marshal(n)
		out = append(out, string(p))
	}
	for i := 0; i < len(ids); {
		if ids[i].backup {
			i++
			continue
		}
		m := ids[i].mapName
		cur := &notice{O: b.origin, M: m}
		base, _ := json.Marshal(cur)
		// The payload is base plus `,"k":[]` and `,"b":[]` plus the keys
		// and their commas (counted one per key).
		empty := len(base) + len(`,"k":[]`) + len(`,"b":[]`)
		if empty > maxNotice {
			emit(&notice{O: b.origin, A: true})
			for i < len(ids) && ids[i].mapName == m {
				i++
			}
			continue
		}
		size, whole := empty, false
		for ; i < len(ids) && ids[i].mapName == m; i++ {
			if ids[i].backup || whole {
				continue
			}
			key := ids[i].key
			k, b64 := jsonSize(key), base64.StdEncoding.EncodedLen(len(key))+2
			if b64 < k {
				k = b64
			}
			if empty+k+1 > maxNotice {
				whole = true // a key too long for any notice
				continue
			}
			if size+k+1 > maxNotice {
				emit(cur)
				cur = &notice{O: b.origin, M: m}
				size = empty
			}
			if k == b64 {
				cur.B = append(cur.B, []byte(key))
			} else {
				cur.K = append(cur.K, key)
			}
			size += k + 1
		}
		if whole {
			cur.K, cur.B = nil, nil
		}
		emit(cur)
	}
	return out
}

// jsonSize is the length of s as encoding/json writes it: quoted, and
// longer only if it holds a byte json escapes (most keys hold none, and
// are not encoded twice).
func jsonSize(s string) int {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&', c >= 0x80:
			k, _ := json.Marshal(s)
			return len(k)
		}
	}
	return len(s) + 2
}

// watchIdle is how long the listening connection may stay silent before
// Watch checks it, and watchTimeout bounds that check: a link that died
// without a word (no RST: a dropped NAT or firewall entry, a failover
// that moved the address) is noticed within about watchIdle +
// watchTimeout, instead of when TCP keepalive gives up (minutes). The
// check sends the LISTEN again, which PostgreSQL does nothing for, so
// the connection still shows as the LISTEN in pg_stat_activity.
const (
	watchIdle    = 5 * time.Second
	watchTimeout = 5 * time.Second
)

// Watch listens on the table's channel on a connection of its own (not
// the pool's) and reports other backends' notifications to fn. When the
// connection is lost, or silent for watchIdle and then unanswering for
// watchTimeout, it connects again, backing off up to 5 s, and then
// reports Changed{All: true}. It stops when ctx is done or at Close, which
// waits for a call of fn in progress unless fn is what calls Close.
func (b *Backend) Watch(ctx context.Context, fn func(abi.Changed)) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	conn, err := b.listen(ctx)
	if err != nil {
		return err
	}
	l := &listener{done: make(chan struct{})}
	b.watchMu.Lock()
	if b.closed.Load() {
		// Closed while connecting: Close did not see this listener.
		b.watchMu.Unlock()
		_ = conn.Close(context.Background())
		return errClosed()
	}
	if b.listeners == nil {
		b.listeners = map[*listener]struct{}{}
	}
	b.listeners[l] = struct{}{}
	b.watchMu.Unlock()
	go b.watch(ctx, l, conn, fn)
	return nil
}

// listener is a running Watch. conn is its connection while it calls fn
// (nil otherwise), for a Close called from fn to close; done is closed
// once it has ended and closed its connection. Both are guarded by
// Backend.watchMu, as is goroutine, the id of the goroutine calling fn.
type listener struct {
	conn      *pgx.Conn
	done      chan struct{}
	goroutine uint64
}

// stopListeners ends the listeners at Close (ctx of each is cancelled by
// b.stop) and waits for them to end, a call of fn in progress included;
// they end without calling fn again (see watch's call). Called from fn,
// it does not wait for that listener, which cannot end before fn returns:
// it closes its connection instead, and the listener ends once fn returns.
func (b *Backend) stopListeners() {
	var conns []*pgx.Conn
	var waits []chan struct{}
	self := goroutine.ID()
	b.watchMu.Lock()
	for l := range b.listeners {
		if l.callingFn(self) {
			conns = append(conns, l.conn)
			l.conn = nil
			delete(b.listeners, l)
		} else {
			waits = append(waits, l.done)
		}
	}
	b.watchMu.Unlock()
	for _, c := range conns {
		_ = c.Close(context.Background())
	}
	for _, w := range waits {
		<-w
	}
}

// inFn reports whether the caller is a listener's call of fn, which a
// Close in progress waits for.
func (b *Backend) inFn() bool {
	self := goroutine.ID()
	b.watchMu.Lock()
	defer b.watchMu.Unlock()
	for l := range b.listeners {
		if l.callingFn(self) {
			return true
		}
	}
	return false
}

// callingFn reports whether l is calling fn on the goroutine self (0:
// unknown, never). The caller holds watchMu.
func (l *listener) callingFn(self uint64) bool {
	return self != 0 && l.conn != nil && l.goroutine == self
}

func (b *Backend) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, b.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, b.mapErr(ctx, "listen", err)
	}
	// Bounded as the checks are: a link dying just after connecting
	// must not hold the listener until TCP keepalive gives up.
	if err := b.alive(ctx, conn); err != nil {
		_ = conn.Close(context.Background())
		return nil, b.mapErr(ctx, "listen", err)
	}
	return conn, nil
}

func (b *Backend) listenSQL() string { return "LISTEN " + pgx.Identifier{b.channel}.Sanitize() }

// alive reports whether conn answers a LISTEN (a no-op on it) within
// watchTimeout. It runs between waits for notifications, never beside
// one: a pgx.Conn is for one goroutine at a time. A notification it reads
// is kept by pgx for the next wait.
func (b *Backend) alive(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, b.watchTimeout)
	defer cancel()
	_, err := conn.Exec(ctx, b.listenSQL())
	return err
}

func (b *Backend) watch(ctx context.Context, l *listener, conn *pgx.Conn, fn func(abi.Changed)) {
	self := goroutine.ID()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		b.watchMu.Lock()
		delete(b.listeners, l)
		b.watchMu.Unlock()
		if conn != nil {
			_ = conn.Close(context.Background())
		}
		close(l.done)
	}()
	// call calls fn unless the backend is closing or ctx is done (a
	// notice read just before the cancel must not be reported after it).
	// While fn runs, Close may come and wait for it; or fn may call Close,
	// which closes conn and does not wait. Either way call then reports
	// false, and the listener ends.
	call := func(c abi.Changed) bool {
		b.watchMu.Lock()
		if b.closed.Load() || ctx.Err() != nil {
			b.watchMu.Unlock()
			return false
		}
		l.conn, l.goroutine = conn, self
		b.watchMu.Unlock()
		fn(c)
		b.watchMu.Lock()
		conn, l.conn = l.conn, nil
		closed := b.closed.Load()
		b.watchMu.Unlock()
		return conn != nil && !closed
	}
	wait := 100 * time.Millisecond
	for {
		if conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			c, err := b.listen(ctx)
			if err != nil {
				wait = min(2*wait, 5*time.Second)
				b.log.Debug("cannot listen for other servers' commits yet", "error", err)
				continue
			}
			conn, wait = c, 100*time.Millisecond
			b.log.Info("listening again for other servers' commits; re-reading everything they may have changed meanwhile")
			if !call(abi.Changed{All: true}) {
				return
			}
		}
		// Wait at most watchIdle, then check the connection: a dead link
		// that no RST reports gives no error here for minutes. A wait cut
		// off by its deadline leaves the connection usable.
		wctx, cancelWait := context.WithTimeout(ctx, b.watchIdle)
		n, err := conn.WaitForNotification(wctx)
		idle := err != nil && wctx.Err() != nil
		cancelWait()
		if err != nil && idle && ctx.Err() == nil {
			if err = b.alive(ctx, conn); err == nil {
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("lost the connection that listens for other servers' commits; connecting again", "error", err)
			_ = conn.Close(context.Background())
			conn = nil
			continue
		}
		if c, ok := b.readNotice(n.Channel, n.Payload); ok && !call(c) {
			return
		}
	}
}

// readNotice reads a notification's payload (any bytes another session of
// the database sent on the channel): what it names, or ok false for one
// of this backend's own and for one to ignore, which it logs.
func (b *Backend) readNotice(channel, payload string) (c abi.Changed, ok bool) {
	var nt notice
	if err := json.Unmarshal([]byte(payload), &nt); err != nil {
		b.log.Warn("ignoring a malformed notification on the table's channel", "channel", channel, "error", err)
		return c, false
	}
	if nt.O == b.origin {
		return c, false
	}
	switch {
	case nt.A || nt.M == "":
		return abi.Changed{All: true}, true
	case abi.ValidateMapName(nt.M) != nil:
		b.log.Warn("ignoring a notification naming an invalid map", "map", nt.M)
		return c, false
	}
	named := len(nt.K) + len(nt.B)
	for _, k := range nt.B {
		nt.K = append(nt.K, string(k))
	}
	keys := slices.DeleteFunc(nt.K, func(k string) bool { return abi.ValidateKey(k) != nil })
	if named == 0 {
		keys = nil
	}
	return abi.Changed{Map: nt.M, Keys: keys}, true
}

// lockClass is the first key of the transaction-level advisory locks
// ApplyChecked takes, one per record ("tg" in ASCII); the second is a hash
// of the schema, map and key. A hash collision only serialises two
// unrelated writes.
const lockClass = 0x7467

// tableLockClass is the first key of the advisory lock of the whole table
// ("tt"); the second is a hash of the schema. Every ApplyChecked takes it,
// shared beside its record locks, or exclusive instead of them for more
// than maxRecordLocks records: PostgreSQL keeps advisory locks in a lock
// table all sessions share (max_locks_per_transaction times
// max_connections entries, 6,400 by default), so a transaction locking
// every record of a large batch failed with "out of shared memory".
const (
	tableLockClass = 0x7474
	maxRecordLocks = 1024
)

const (
	lockSQL   = `SELECT pg_advisory_xact_lock($1::int4, h) FROM pg_catalog.unnest($2::int4[]) AS h`
	tableSQL  = `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`
	sharedSQL = `SELECT pg_advisory_xact_lock_shared($1::int4, $2::int4)`
	expectSQL = `SELECT t.map_name, t.key, t.value FROM topgun_maps AS t
JOIN unnest($1::text[], $2::text[]) AS e(m, k) ON t.map_name = e.m AND t.key = e.k AND NOT t.is_backup`
)

// ApplyChecked applies the batch in one transaction that first takes an
// advisory lock per record of the batch and of expect (in one order, so
// two servers never deadlock), or the table's lock for more than
// maxRecordLocks records, then compares expect with what the table holds.
// A lock, unlike a row lock, also covers a record that does not exist yet.
// Like a batch's rows, the locks and the expected records are sent in
// statements of at most maxStatementBytes of parameters.
func (b *Backend) ApplyChecked(ctx context.Context, batch *abi.Batch, expect []abi.Expect) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := abi.ValidateBatch(batch); err != nil {
		return err
	}
	for i := range expect {
		if err := abi.ValidateMapName(expect[i].Map); err != nil {
			return err
		}
		if err := abi.ValidateKey(expect[i].Key); err != nil {
			return err
		}
	}
	if len(batch.Mutations) == 0 && len(expect) == 0 {
		return nil
	}
	p := newPlan(batch)
	notes := b.notices(p.ids)
	locks := make([]int32, 0, len(p.ids)+len(expect))
	for _, id := range p.ids {
		if !id.backup {
			locks = append(locks, b.lockKey(id.mapName, id.key))
		}
	}
	maps, keys := make([]string, len(expect)), make([]string, len(expect))
	want := make(map[recordID]*abi.Expect, len(expect))
	for i := range expect {
		e := &expect[i]
		maps[i], keys[i] = e.Map, e.Key
		want[recordID{e.Map, e.Key, false}] = e
		locks = append(locks, b.lockKey(e.Map, e.Key))
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)
	tableLock := sharedSQL
	if len(locks) > maxRecordLocks {
		tableLock, locks = tableSQL, nil
	}
	err := b.retry(ctx, "apply", false, func(ctx context.Context) error {
		return b.onWriteConn(ctx, func(c *pgxpool.Conn) error {
			return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				// The table's lock first, then the records': one order.
				// Locks and expected records go in statements under the
				// budget, as a batch's rows do: a direct caller's expect
				// list has no bound. The lock statements are sent in one
				// round trip (run in order; the first failure ends it).
				var lb pgx.Batch
				lb.Queue(tableLock, tableLockClass, b.tableLockKey())
				_ = split(len(locks), b.maxStatementBytes, func(int) int { return 8 }, func(start, end int) error {
					lb.Queue(lockSQL, lockClass, locks[start:end])
					return nil
				})
				if err := tx.SendBatch(ctx, &lb).Close(); err != nil {
					return err
				}
				seen := make(map[recordID]bool, len(expect))
				var conflict *abi.Expect
				err := split(len(expect), b.maxStatementBytes, func(i int) int { return len(maps[i]) + len(keys[i]) + 8 }, func(start, end int) error {
					rows, err := tx.Query(ctx, b.sql.expect, maps[start:end], keys[start:end])
					if err != nil {
						return err
					}
					defer rows.Close()
					for rows.Next() {
						var id recordID
						var v []byte
						if err := rows.Scan(&id.mapName, &id.key, &v); err != nil {
							return err
						}
						seen[id] = true
						if e := want[id]; e != nil && (!e.Present || !bytes.Equal(e.Value, v)) && conflict == nil {
							conflict = e
						}
					}
					return rows.Err()
				})
				if err != nil {
					return err
				}
				for id, e := range want {
					if e.Present && !seen[id] && conflict == nil {
						conflict = e
					}
				}
				if conflict != nil {
					return abi.Errorf(abi.CodeConflict, "postgres: apply: record %q of map %q changed since it was read (another server wrote it); merge again", conflict.Key, conflict.Map)
				}
				return b.writeTx(ctx, tx, p, notes)
			})
		})
	})
	return b.applyErr(ctx, err)
}

func (b *Backend) tableLockKey() int32 {
	h := fnv.New32a()
	h.Write([]byte(b.schema))
	return int32(h.Sum32())
}

func (b *Backend) lockKey(mapName, key string) int32 {
	h := fnv.New32a()
	h.Write([]byte(b.schema))
	h.Write([]byte{0})
	h.Write([]byte(mapName))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int32(h.Sum32())
}
