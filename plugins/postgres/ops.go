package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/topgun-go/topgun/abi"
)

// Apply statements. A batch is usually one statement, so one round trip
// and one commit whatever its size: rows travel as arrays and are expanded
// by unnest. A statement may not touch a row twice, so Apply first collapses
// the batch to the last mutation of each record. On conflict the upsert
// keeps created_at and replaces value, expiration_time and updated_at, as
// TopGun's server does.
const (
	upsertSQL = `INSERT INTO topgun_maps AS t (map_name, key, value, expiration_time, is_backup, created_at, updated_at)
SELECT u.m, u.k, u.v, u.e, u.b, $6, $6 FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int8[], $5::bool[]) AS u(m, k, v, e, b)
ON CONFLICT (map_name, key, is_backup) DO UPDATE
SET value = EXCLUDED.value, expiration_time = EXCLUDED.expiration_time, updated_at = EXCLUDED.updated_at`

	deleteSQL = `DELETE FROM topgun_maps AS t USING unnest($1::text[], $2::text[], $3::bool[]) AS d(m, k, b)
WHERE t.map_name = d.m AND t.key = d.k AND t.is_backup = d.b`

	// Functions whose parameters are polymorphic or "any" (unnest, count,
	// array_agg, ...) or take an argument only through an implicit cast,
	// and such operators, are called as pg_catalog's: PostgreSQL prefers an
	// overload of closer argument types from any schema on search_path,
	// which a role allowed to create objects there (every role, in
	// public, before PostgreSQL 15) could plant to run its code with the
	// server's rights. unnest of several arrays in FROM is pg_catalog's
	// already, and may not be qualified (only that form expands into
	// one unnest per array).
	//
	// The statements of a one-statement batch also notify the other
	// processes (see Watch): data-modifying WITH clauses always run, and
	// the notifications go out when, and only if, the statement commits.
	notifySQL       = `SELECT pg_notify($1, n) FROM pg_catalog.unnest($2::text[]) AS n`
	upsertNotifySQL = `WITH upserted AS (` + upsertSQL + `)
SELECT pg_notify($7, n) FROM pg_catalog.unnest($8::text[]) AS n`
	deleteNotifySQL = `WITH deleted AS (` + deleteSQL + `)
SELECT pg_notify($4, n) FROM pg_catalog.unnest($5::text[]) AS n`
	// Deletes and upserts in one statement touch disjoint rows (the batch
	// is collapsed), so their order inside the statement does not matter.
	applyNotifySQL = `WITH deleted AS (
DELETE FROM topgun_maps AS t USING unnest($7::text[], $8::text[], $9::bool[]) AS d(m, k, b)
WHERE t.map_name = d.m AND t.key = d.k AND t.is_backup = d.b),
upserted AS (` + upsertSQL + `)
SELECT pg_notify($10, n) FROM pg_catalog.unnest($11::text[]) AS n`
)

// statements are the statements of a Backend, on its own table.
type statements struct {
	upsert, del, upsertNotify, deleteNotify, applyNotify string
	get, listMaps, listExpired, expect                   string
}

// tableRef is the table's name in the statements of this package.
var tableRef = regexp.MustCompile(`\btopgun_maps\b`)

// qualify names the table of schema in sql, one of this package's
// statements. PostgreSQL looks an unqualified name up on search_path at
// each statement: once the table is dropped or renamed by an operator, it
// would find a topgun_maps of a later schema on the path (another
// tenant's, or public's) and read and write that one.
func qualify(sql, schema string) string {
	return tableRef.ReplaceAllLiteralString(sql, pgx.Identifier{schema, tableName}.Sanitize())
}

func newStatements(schema string) statements {
	return statements{
		upsert: qualify(upsertSQL, schema), del: qualify(deleteSQL, schema),
		upsertNotify: qualify(upsertNotifySQL, schema), deleteNotify: qualify(deleteNotifySQL, schema),
		applyNotify: qualify(applyNotifySQL, schema),
		get:         qualify(getSQL, schema), listMaps: qualify(listMapsSQL, schema),
		listExpired: qualify(listExpiredSQL, schema), expect: qualify(expectSQL, schema),
	}
}

type recordID struct {
	mapName string
	key     string
	backup  bool
}

func compareID(a, b recordID) int {
	if c := cmp.Compare(a.mapName, b.mapName); c != 0 {
		return c
	}
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	switch {
	case a.backup == b.backup:
		return 0
	case !a.backup:
		return -1
	}
	return 1
}

// maxStatementBytes bounds the parameters of one statement (values, keys,
// map names, notifications): PostgreSQL and pgx take no message or array
// of 1 GiB or more, while a batch may hold up to MaxBatchOps values of
// MaxValueBytes, and its keys, map names and notifications (up to about
// 6 KB a record, for names JSON escapes) can pass 1 GiB beside 256 MiB of
// values. Larger batches are split into several statements of one
// transaction.
const maxStatementBytes = 256 << 20

// rowOverhead bounds what a row adds to the array parameters beyond its
// map name, key and value: their lengths (4 bytes each), an expiration
// time (8 + 4) and a backup flag (1 + 4).
const rowOverhead = 3*4 + 12 + 5

// rows are the columns of a batch's puts or deletes, as array parameters.
type rows struct {
	maps    []string
	keys    []string
	vals    [][]byte // puts only
	exps    []int64  // puts only
	backups []bool
}

func (r *rows) add(id recordID) {
	r.maps, r.keys, r.backups = append(r.maps, id.mapName), append(r.keys, id.key), append(r.backups, id.backup)
}

// size bounds what row i adds to a statement's parameters.
func (r *rows) size(i int) int {
	n := len(r.maps[i]) + len(r.keys[i]) + rowOverhead
	if r.vals != nil {
		n += len(r.vals[i])
	}
	return n
}

// split calls f with consecutive ranges of [0, n) whose sizes sum to at
// most limit, or of one element larger than limit.
func split(n, limit int, size func(int) int, f func(start, end int) error) error {
	for start := 0; start < n; {
		end, sum := start, 0
		for end < n && (end == start || sum+size(end) <= limit) {
			sum += size(end)
			end++
		}
		if err := f(start, end); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// noticesSize bounds what notes add to a statement's parameters.
func noticesSize(notes []string) int {
	n := 0
	for _, s := range notes {
		n += len(s) + 4
	}
	return n
}

// plan is a batch collapsed to the last mutation of each record, sorted
// by record so that concurrent batches lock rows in one order.
type plan struct {
	now        int64
	ids        []recordID
	puts, dels rows
	// recreated: a record is deleted and put again (so deleted first,
	// which one statement cannot do); bytes sums the rows' sizes.
	recreated bool
	bytes     int
}

func newPlan(batch *abi.Batch) *plan {
	muts := batch.Mutations
	// Keep the last mutation of each record (one statement may not touch a
	// row twice). A put that follows a delete of the same record makes a
	// new record (CreatedAt = Now), which an upsert alone would not do:
	// such records are also deleted first.
	last := make(map[recordID]int, len(muts))
	var recreated map[recordID]bool
	for i := range muts {
		id := recordID{muts[i].Map, muts[i].Key, muts[i].Backup}
		if muts[i].Kind == abi.OpPut {
			if j, ok := last[id]; ok && (muts[j].Kind == abi.OpDelete || recreated[id]) {
				if recreated == nil {
					recreated = map[recordID]bool{}
				}
				recreated[id] = true
			}
		} else if recreated != nil {
			delete(recreated, id)
		}
		last[id] = i
	}
	p := &plan{now: batch.Now, ids: make([]recordID, 0, len(last)), recreated: len(recreated) > 0}
	for id := range last {
		p.ids = append(p.ids, id)
	}
	slices.SortFunc(p.ids, compareID)

	nPut := 0
	for _, id := range p.ids {
		if muts[last[id]].Kind == abi.OpPut {
			nPut++
		}
	}
	p.puts = rows{
		maps: make([]string, 0, nPut), keys: make([]string, 0, nPut),
		vals: make([][]byte, 0, nPut), exps: make([]int64, 0, nPut), backups: make([]bool, 0, nPut),
	}
	for _, id := range p.ids {
		m := &muts[last[id]]
		if m.Kind == abi.OpDelete {
			p.dels.add(id)
			p.bytes += p.dels.size(len(p.dels.keys) - 1)
			continue
		}
		if recreated[id] {
			p.dels.add(id)
			p.bytes += p.dels.size(len(p.dels.keys) - 1)
		}
		v := m.Value
		if v == nil {
			v = []byte{} // nil would be NULL
		}
		p.puts.add(id)
		p.puts.vals, p.puts.exps = append(p.puts.vals, v), append(p.puts.exps, m.ExpirationTime)
		p.bytes += p.puts.size(len(p.puts.keys) - 1)
	}
	return p
}

// Apply commits the batch atomically. A batch is usually one statement:
// one round trip and one commit. It is a transaction of several statements
// when a record is deleted and put again in the batch, or when its rows
// and notifications exceed maxStatementBytes. Either way it notifies the
// other processes sharing the table of the records it changed (see Watch).
//
// If the connection breaks after the batch was sent, PostgreSQL may or may
// not have committed it; Apply then returns CodeUnavailable and says so.
// Applying the same batch again is safe: it converges to the same rows.
func (b *Backend) Apply(ctx context.Context, batch *abi.Batch) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := abi.ValidateBatch(batch); err != nil {
		return err
	}
	if len(batch.Mutations) == 0 {
		return nil
	}
	p := newPlan(batch)
	notes := b.notices(p.ids)
	if p.recreated || p.bytes+noticesSize(notes) > b.maxStatementBytes {
		err := b.retry(ctx, "apply", false, func(ctx context.Context) error {
			return b.onWriteConn(ctx, func(c *pgxpool.Conn) error {
				return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					return b.writeTx(ctx, tx, p, notes)
				})
			})
		})
		return b.applyErr(ctx, err)
	}

	var (
		sql  string
		args []any
	)
	puts, dels := &p.puts, &p.dels
	switch {
	case len(dels.keys) == 0:
		sql, args = b.sql.upsertNotify, []any{puts.maps, puts.keys, puts.vals, puts.exps, puts.backups, p.now, b.channel, notes}
	case len(puts.keys) == 0:
		sql, args = b.sql.deleteNotify, []any{dels.maps, dels.keys, dels.backups, b.channel, notes}
	default:
		sql, args = b.sql.applyNotify, []any{puts.maps, puts.keys, puts.vals, puts.exps, puts.backups, p.now, dels.maps, dels.keys, dels.backups, b.channel, notes}
	}
	err := b.retry(ctx, "apply", false, func(ctx context.Context) error {
		return b.onWriteConn(ctx, func(c *pgxpool.Conn) error {
			_, err := c.Exec(ctx, sql, args...)
			return err
		})
	})
	return b.applyErr(ctx, err)
}

// writeTx writes a plan inside tx: the deletes first (which include the
// records put again), then the puts, then the notifications, each in
// statements of at most b.maxStatementBytes of parameters.
func (b *Backend) writeTx(ctx context.Context, tx pgx.Tx, p *plan, notes []string) error {
	puts, dels := &p.puts, &p.dels
	err := split(len(dels.keys), b.maxStatementBytes, dels.size, func(start, end int) error {
		_, err := tx.Exec(ctx, b.sql.del, dels.maps[start:end], dels.keys[start:end], dels.backups[start:end])
		return err
	})
	if err != nil {
		return err
	}
	err = split(len(puts.keys), b.maxStatementBytes, puts.size, func(start, end int) error {
		_, err := tx.Exec(ctx, b.sql.upsert, puts.maps[start:end], puts.keys[start:end], puts.vals[start:end],
			puts.exps[start:end], puts.backups[start:end], p.now)
		return err
	})
	if err != nil {
		return err
	}
	return split(len(notes), b.maxStatementBytes, func(i int) int { return len(notes[i]) + 4 }, func(start, end int) error {
		_, err := tx.Exec(ctx, notifySQL, b.channel, notes[start:end])
		return err
	})
}

// applyErr explains a connection failure after a batch was sent.
func (b *Backend) applyErr(ctx context.Context, err error) error {
	if err != nil && abi.CodeOf(err) == abi.CodeUnavailable && ctx.Err() == nil && !b.closed.Load() {
		if cause := unwrapCause(err); cause != nil && !retryable(cause) && !isConnectError(cause) && isConnectionError(cause) {
			return abi.Wrap(abi.CodeUnavailable, cause, "postgres: apply: the connection broke after the batch was sent, so it may or may not be committed; apply it again when the database is reachable")
		}
	}
	return err
}

// unwrapCause returns the native cause kept in an *abi.Error.
func unwrapCause(err error) error {
	var e *abi.Error
	if errors.As(err, &e) {
		return e.Err
	}
	return nil
}

const getSQL = `SELECT key, value, expiration_time, created_at, updated_at FROM topgun_maps
WHERE map_name = $1 AND is_backup = $2 AND key = ANY($3::text[])`

// Get reads the records of keys in one statement and returns them in the
// order of keys.
func (b *Backend) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	if err := abi.ValidateGet(mapName, keys); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	uniq := keys
	if len(keys) > 1 {
		seen := make(map[string]struct{}, len(keys))
		uniq = make([]string, 0, len(keys))
		for _, k := range keys {
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				uniq = append(uniq, k)
			}
		}
	}
	var found map[string]abi.Record
	err := b.retry(ctx, "get", true, func(ctx context.Context) error {
		found = make(map[string]abi.Record, len(uniq))
		rows, err := b.pool.Query(ctx, b.sql.get, mapName, backup, uniq)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r := abi.Record{Map: mapName, Backup: backup}
			if err := rows.Scan(&r.Key, &r.Value, &r.ExpirationTime, &r.CreatedAt, &r.UpdatedAt); err != nil {
				return err
			}
			if r.Value == nil {
				r.Value = []byte{}
			}
			found[r.Key] = r
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]abi.Record, 0, len(found))
	for _, k := range uniq {
		if r, ok := found[k]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// Scan statements: keyset pagination on the primary key index, one
// statement (one snapshot) per page. The window sums key and value sizes
// in key order without reading values (octet_length of a stored value
// reads its length only), so the page stops at the byte budget inside the
// database. A row is kept when it is the first or fits the row limit and
// the budget; the statement also returns the first row not kept, without
// its value, which says that the scan is not complete.
const scanSQLTemplate = `SELECT key, CASE WHEN keep THEN value END, expiration_time, created_at, updated_at, keep FROM (
  SELECT key, value, expiration_time, created_at, updated_at,
         rn = 1 OR (rn <= $3 AND total <= $4) AS keep, rn, total - size AS before
  FROM (
    SELECT key, value, expiration_time, created_at, updated_at,
           row_number() OVER w AS rn,
           sum(octet_length(key) + octet_length(value)) OVER w AS total,
           octet_length(key) + octet_length(value) AS size
    FROM topgun_maps
    WHERE map_name = $1 AND is_backup = $2%[2]s
    WINDOW w AS (ORDER BY key%[1]s ROWS UNBOUNDED PRECEDING)
    ORDER BY key%[1]s
    LIMIT $3 + 1
  ) AS win
) AS page
WHERE rn <= 2 OR before <= $4
ORDER BY key%[1]s`

// scanSQL returns the statements of a first and of a later page; collate
// is empty when the key column sorts by bytes, else ` COLLATE "C"`.
func scanSQL(collate string) (first, after string) {
	return fmt.Sprintf(scanSQLTemplate, collate, ""), fmt.Sprintf(scanSQLTemplate, collate, " AND key"+collate+" > $5")
}

// maxScanLimit caps a page's record count so that the row limit stays far
// from overflow; a page never needs more.
const maxScanLimit = 1 << 20

// Scan returns one page of a map in byte order of its keys.
func (b *Backend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if err := b.begin(ctx); err != nil {
		return abi.Page{}, err
	}
	if err := abi.ValidateScan(&req); err != nil {
		return abi.Page{}, err
	}
	after, hasAfter, err := abi.ParseKeyCursor(req.Cursor)
	if err != nil {
		return abi.Page{}, err
	}
	// The cursor is a key this backend returned, which may be longer than
	// abi.MaxKeyBytes in a table TopGun's server wrote (it has no limit):
	// only what cannot be text is refused.
	if !utf8.ValidString(after) || strings.IndexByte(after, 0) >= 0 {
		return abi.Page{}, abi.Errorf(abi.CodeInvalidArgument, "postgres: scan cursor is not one this backend issued")
	}
	limit := int64(min(req.Limit, maxScanLimit))
	sql, args := b.scanFirst, []any{req.Map, req.Backup, limit, int64(req.MaxBytes)}
	if hasAfter {
		sql, args = b.scanAfter, append(args, after)
	}
	var page abi.Page
	err = b.retry(ctx, "scan", true, func(ctx context.Context) error {
		page = abi.Page{}
		rows, err := b.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r := abi.Record{Map: req.Map, Backup: req.Backup}
			var keep bool
			if err := rows.Scan(&r.Key, &r.Value, &r.ExpirationTime, &r.CreatedAt, &r.UpdatedAt, &keep); err != nil {
				return err
			}
			if !keep {
				page.Cursor = abi.KeyCursor(page.Records[len(page.Records)-1].Key)
				break
			}
			if r.Value == nil {
				r.Value = []byte{}
			}
			page.Records = append(page.Records, r)
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return abi.Page{}, err
	}
	return page, nil
}

// ListMaps walks the distinct map names with a recursive query that jumps
// from one name to the next on the map index (a loose index scan), so its
// cost grows with the number of maps, not of records.
const listMapsSQL = `WITH RECURSIVE m(name) AS (
  (SELECT map_name FROM topgun_maps WHERE NOT is_backup ORDER BY map_name LIMIT 1)
  UNION ALL
  SELECT (SELECT t.map_name FROM topgun_maps AS t WHERE t.map_name > m.name AND NOT t.is_backup ORDER BY t.map_name LIMIT 1)
  FROM m WHERE m.name IS NOT NULL
)
SELECT name FROM m WHERE name IS NOT NULL`

// ListMaps returns the sorted names of the maps with primary records.
func (b *Backend) ListMaps(ctx context.Context) ([]string, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	var names []string
	err := b.retry(ctx, "list maps", true, func(ctx context.Context) error {
		rows, err := b.pool.Query(ctx, b.sql.listMaps)
		if err != nil {
			return err
		}
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, err
	}
	// A table TopGun's server wrote may hold maps whose names no operation
	// takes (it checks none on PostgreSQL): listed, the scan every caller
	// makes of each listed map would fail. They are left in the table.
	valid := names[:0]
	for _, name := range names {
		if abi.ValidateMapName(name) == nil {
			valid = append(valid, name)
		} else {
			b.log.Warn("skipping a map whose name no operation takes", "name_bytes", len(name))
		}
	}
	sort.Strings(valid) // byte order whatever the collation
	return valid, nil
}

// ListExpired reads the partial index topgun_maps_expiry; ties are broken
// by map, backup flag and key, as the null backend does.
const listExpiredSQL = `SELECT map_name, key, is_backup, expiration_time, created_at, updated_at FROM topgun_maps
WHERE expiration_time > 0 AND expiration_time <= $1
ORDER BY expiration_time, map_name, is_backup, key
LIMIT $2`

// ListExpired returns up to limit records (without values) whose
// expiration time is set and not after now, oldest first.
func (b *Backend) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	limit = abi.ScanLimit(limit)
	var out []abi.Record
	err := b.retry(ctx, "list expired", true, func(ctx context.Context) error {
		rows, err := b.pool.Query(ctx, b.sql.listExpired, now, int64(limit))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (abi.Record, error) {
			var r abi.Record
			err := row.Scan(&r.Map, &r.Key, &r.Backup, &r.ExpirationTime, &r.CreatedAt, &r.UpdatedAt)
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
