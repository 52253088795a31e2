package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// schemaDump describes every relation, column, index and constraint of the
// connection's current schema, in a stable textual form.
func schemaDump(t testing.TB, conn *pgx.Conn) []string {
	t.Helper()
	ctx := testCtx(t)
	var out []string
	collect := func(prefix, sql string) {
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
		for _, l := range lines {
			out = append(out, prefix+" "+l)
		}
	}
	collect("relation", `SELECT c.relname || ' ' || c.relkind::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace ORDER BY 1`)
	collect("column", `SELECT table_name || '.' || column_name || ' ' || data_type || ' nullable=' || is_nullable || ' default=' || coalesce(column_default, '-')
FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)
	collect("index", `SELECT indexname || ': ' || regexp_replace(indexdef, ' ON \S+ USING ', ' USING ') FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1`)
	collect("constraint", `SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = current_schema()::regnamespace ORDER BY 1`)
	return out
}

func TestOpen_createsExactlyTheSchema(t *testing.T) {
	t.Parallel()
	_, url := openFresh(t)
	got := schemaDump(t, sqlConn(t, url))
	want := []string{
		"relation idx_topgun_maps_map i",
		"relation topgun_maps r",
		"relation topgun_maps_expiry i",
		"relation topgun_maps_pkey i",
		"column topgun_maps.map_name text nullable=NO default=-",
		"column topgun_maps.key text nullable=NO default=-",
		"column topgun_maps.value bytea nullable=NO default=-",
		"column topgun_maps.expiration_time bigint nullable=NO default=0",
		"column topgun_maps.is_backup boolean nullable=NO default=false",
		"column topgun_maps.created_at bigint nullable=NO default=-",
		"column topgun_maps.updated_at bigint nullable=NO default=-",
		"index idx_topgun_maps_map: CREATE INDEX idx_topgun_maps_map USING btree (map_name)",
		"index topgun_maps_expiry: CREATE INDEX topgun_maps_expiry USING btree (expiration_time) WHERE (expiration_time > 0)",
		"index topgun_maps_pkey: CREATE UNIQUE INDEX topgun_maps_pkey USING btree (map_name, key, is_backup)",
		"constraint topgun_maps_pkey: PRIMARY KEY (map_name, key, is_backup)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("schema:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestOpen_leavesOtherTablesUntouched(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	ctx := testCtx(t)
	for _, stmt := range []string{
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, total NUMERIC(10,2), note TEXT DEFAULT 'none')`,
		`CREATE INDEX orders_customer ON orders (customer)`,
		`CREATE TABLE maps (map_name TEXT, key TEXT)`, // names like ours, outside the topgun_ namespace
		`INSERT INTO orders SELECT i, 'customer-' || (i % 7), i * 1.5, CASE WHEN i % 2 = 0 THEN NULL ELSE 'n' || i END FROM generate_series(1, 50) i`,
		`INSERT INTO maps VALUES ('todo', 'k1'), ('todo', 'k2')`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rowsDump := func() string {
		var s string
		err := conn.QueryRow(ctx, `SELECT (SELECT string_agg(format('%s|%s|%s|%s', id, customer, total, note), ';' ORDER BY id) FROM orders) || '#' ||
			(SELECT string_agg(map_name || '/' || key, ';' ORDER BY key) FROM maps)`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	appSchema := func() []string {
		var out []string
		for _, l := range schemaDump(t, conn) {
			if !strings.Contains(l, "topgun_") {
				out = append(out, l)
			}
		}
		return out
	}
	rowsBefore, schemaBefore := rowsDump(), appSchema()

	b := openURL(t, url)
	var batch abi.Batch
	batch.Now = 1000
	for i := range 20 {
		batch.Put("maps", fmt.Sprintf("k%d", i), false, []byte("v"), 0)
		batch.Put("orders", fmt.Sprintf("k%d", i), true, []byte("v"), 5)
	}
	batch.Delete("maps", "k1", false)
	apply(t, b, &batch)
	if _, err := b.ListMaps(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ListExpired(ctx, 10, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Open again (the idempotent path) and close.
	_ = openURL(t, url).Close()

	if got := rowsDump(); got != rowsBefore {
		t.Errorf("application rows changed:\n%s\nwant:\n%s", got, rowsBefore)
	}
	if got := appSchema(); !slices.Equal(got, schemaBefore) {
		t.Errorf("application schema changed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(schemaBefore, "\n"))
	}
	for _, l := range schemaDump(t, conn) {
		if strings.HasPrefix(l, "relation ") && strings.Contains(l, "topgun") &&
			!strings.HasPrefix(l, "relation topgun_") && !strings.HasPrefix(l, "relation idx_topgun_") {
			t.Errorf("created outside the topgun_ namespace: %s", l)
		}
	}
}

func TestOpen_twiceIsIdempotent(t *testing.T) {
	t.Parallel()
	b1, url := openFresh(t)
	ctx := testCtx(t)
	var batch abi.Batch
	batch.Now = 7
	batch.Put("m", "k", false, []byte("v1"), 0)
	apply(t, b1, &batch)
	before := schemaDump(t, sqlConn(t, url))

	b2 := openURL(t, url)
	b3 := openURL(t, url)
	if got := schemaDump(t, sqlConn(t, url)); !slices.Equal(got, before) {
		t.Fatalf("schema changed by a second Open:\n%s", strings.Join(got, "\n"))
	}
	for i, b := range []*Backend{b1, b2, b3} {
		r, err := abi.GetOne(ctx, b, "m", "k", false)
		if err != nil || string(r.Value) != "v1" || r.CreatedAt != 7 {
			t.Fatalf("backend %d: %+v, %v", i, r, err)
		}
	}
}

// TestOpen_concurrentFirstOpen opens several backends at once on an empty
// schema, as several server processes starting together would.
func TestOpen_concurrentFirstOpen(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			b, err := Open(context.Background(), url, testOptions(t))
			if err == nil {
				err = b.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}

// TestOpen_existingTopGunTable opens a table as TopGun's server creates it
// (with its own idx_topgun_maps_expiry) holding rows it wrote.
func TestOpen_existingTopGunTable(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	ctx := testCtx(t)
	for _, stmt := range []string{
		schemaDDL[0], schemaDDL[1],
		`CREATE INDEX IF NOT EXISTS idx_topgun_maps_expiry ON topgun_maps (map_name, expiration_time) WHERE expiration_time > 0`,
		`INSERT INTO topgun_maps (map_name, key, value, expiration_time, is_backup, created_at, updated_at)
		 VALUES ('todos', 'a', '\x81a3', 0, false, 100, 200), ('todos', 'b', '\x', 0, false, 101, 201), ('todos', 'a', '\x01', 0, true, 5, 6)`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	b := openURL(t, url)
	recs, _ := scanAll(t, b, "todos", false, 0, 0)
	want := []abi.Record{
		{Map: "todos", Key: "a", Value: []byte{0x81, 0xa3}, CreatedAt: 100, UpdatedAt: 200},
		{Map: "todos", Key: "b", Value: []byte{}, CreatedAt: 101, UpdatedAt: 201},
	}
	if !recordsEqual(recs, want) {
		t.Fatalf("scan = %+v, want %+v", recs, want)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN ('idx_topgun_maps_expiry', 'topgun_maps_expiry')`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("expiry indexes = %d, %v; want TopGun's and ours", n, err)
	}
}

func TestOpen_rejectsForeignTopgunMapsTable(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	if _, err := conn.Exec(testCtx(t), `CREATE TABLE topgun_maps (map_name TEXT, key TEXT, value TEXT)`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(testCtx(t), url, testOptions(t))
	mustCode(t, err, abi.ErrInvalidArgument)
	t.Logf("error: %v", err)
	var n int
	if err := conn.QueryRow(testCtx(t), `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("indexes added to the foreign table: %d, %v", n, err)
	}
}

func TestOpen_noSchemaOnSearchPath(t *testing.T) {
	t.Parallel()
	url, err := pgtest.WithSearchPath(pgtest.URL(t), pgtest.SchemaName(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(testCtx(t), url, testOptions(t))
	mustCode(t, err, abi.ErrInvalidArgument)
	t.Logf("error: %v", err)
	// The error says what is wrong, not what a query tripped on.
	if !strings.Contains(err.Error(), "names no existing schema") {
		t.Fatalf("error %q does not say that search_path names no existing schema", err)
	}
}

// TestApply_atomic makes the database reject one row of a batch (with a
// trigger in the test's schema) and checks that nothing of it is applied.
func TestApply_atomic(t *testing.T) {
	t.Parallel()
	b, url := openFresh(t)
	ctx := testCtx(t)
	var first abi.Batch
	first.Now = 10
	first.Put("m", "keep", false, []byte("old"), 0)
	first.Put("m", "gone", false, []byte("old"), 0)
	apply(t, b, &first)

	conn := sqlConn(t, url)
	for _, stmt := range []string{
		`CREATE FUNCTION reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN IF NEW.key = 'poison' THEN RAISE EXCEPTION 'poison row'; END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER reject_poison BEFORE INSERT OR UPDATE ON topgun_maps FOR EACH ROW EXECUTE FUNCTION reject_poison()`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	var bad abi.Batch
	bad.Now = 20
	bad.Put("m", "keep", false, []byte("new"), 0)
	bad.Delete("m", "gone", false)
	for i := range 50 {
		bad.Put("m", fmt.Sprintf("new-%d", i), false, []byte("x"), 0)
	}
	bad.Put("m", "poison", false, []byte("x"), 0)
	err := b.Apply(ctx, &bad)
	if err == nil {
		t.Fatal("Apply of a batch the database rejects succeeded")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "P0001" {
		t.Errorf("error %v does not keep the PostgreSQL cause", err)
	}
	mustCode(t, err, abi.ErrInternal)
	recs, _ := scanAll(t, b, "m", false, 0, 0)
	want := []abi.Record{
		{Map: "m", Key: "gone", Value: []byte("old"), CreatedAt: 10, UpdatedAt: 10},
		{Map: "m", Key: "keep", Value: []byte("old"), CreatedAt: 10, UpdatedAt: 10},
	}
	if !recordsEqual(recs, want) {
		t.Fatalf("after a failed batch: %+v, want %+v", recs, want)
	}
}

// TestScan_nonByteCollation opens a table whose key column has a
// natural-language collation: ByteOrder is false, yet scans come in byte
// order, as from every backend (the server pages by comparing keys as
// bytes), served by an index of the backend's own without sorting.
func TestScan_nonByteCollation(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	ctx := testCtx(t)
	var coll string
	if err := conn.QueryRow(ctx, `SELECT collname FROM pg_collation WHERE collname IN ('en-x-icu', 'und-x-icu', 'en_US.utf8', 'en_US') ORDER BY 1 LIMIT 1`).Scan(&coll); err != nil {
		t.Skipf("no natural-language collation in this database: %v", err)
	}
	ddl := strings.Replace(schemaDDL[0], "key TEXT NOT NULL", "key TEXT COLLATE "+pgx.Identifier{coll}.Sanitize()+" NOT NULL", 1)
	if _, err := conn.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	b := openURL(t, url)
	if b.ByteOrder() {
		t.Fatalf("ByteOrder() = true with collation %s", coll)
	}
	keys := []string{"a", "B", "b", "A", "_x", "-y", "é", "e", "f", "10", "9", "", "ä", "z", "Z"}
	var batch abi.Batch
	batch.Now = 1
	for _, k := range keys {
		batch.Put("m", k, false, []byte(k), 0)
	}
	apply(t, b, &batch)
	want := slices.Clone(keys)
	slices.Sort(want)
	var collated []string
	rows, err := conn.Query(ctx, `SELECT key FROM topgun_maps WHERE map_name = 'm' ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	if collated, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(collated, want) {
		t.Fatalf("collation %s orders the keys by bytes; the test needs one that does not", coll)
	}
	for _, limit := range []int{1, 2, 4, 100} {
		recs, _ := scanAll(t, b, "m", false, limit, 0)
		var got []string
		for _, r := range recs {
			got = append(got, r.Key)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: scan order %q, want byte order %q", limit, got, want)
		}
	}
	// The plan reads the index in order: no sort.
	for _, s := range []string{`ANALYZE topgun_maps`, `SET enable_seqscan = off`} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var raw []byte
	if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+b.scanAfter, "m", false, int64(10), int64(1<<20), "b").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var plan []map[string]any
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
		t.Fatalf("plan %s: %v", raw, err)
	}
	var nodes []string
	planNodes(plan[0]["Plan"].(map[string]any), &nodes)
	if !slices.ContainsFunc(nodes, func(n string) bool { return strings.HasSuffix(n, " on "+keyIndexName) }) ||
		slices.Contains(nodes, "Sort") || slices.Contains(nodes, "Incremental Sort") {
		t.Fatalf("scan plan %q: want %s in order, without a sort", nodes, keyIndexName)
	}
}

// TestOpen_lockedTableWaitsForCtx holds a lock on a table that lacks its
// indexes, so Open's index creation must wait: it waits only as long as ctx
// allows (and at most its 60 s lock timeout), then fails with the ctx code.
func TestOpen_lockedTableWaitsForCtx(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	ctx := testCtx(t)
	if _, err := conn.Exec(ctx, schemaDDL[0]); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `LOCK TABLE topgun_maps IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Open(short, url, testOptions(t))
	mustCode(t, err, abi.ErrDeadlineExceeded)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %s after its deadline", d)
	}
}

// A role allowed only to read and write an existing table opens it: no DDL
// runs for what exists, and the expiry index it may not create is done
// without (ListExpired scans). Before, Open ran CREATE TABLE IF NOT EXISTS,
// which needs the right to create in the schema, and failed.
func TestOpen_leastPrivilegeRole(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	ctx := testCtx(t)
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	role := schema + "_app"
	login := roleURL(t, url, role, []string{
		schemaDDL[0], schemaDDL[1],
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON topgun_maps TO ` + role,
	}, []string{
		`REVOKE ALL ON topgun_maps FROM ` + role,
		`REVOKE ALL ON SCHEMA ` + schema + ` FROM ` + role,
		`DROP ROLE IF EXISTS ` + role,
	})
	b := openURL(t, login)
	if b.Describe().Capabilities.Has(abi.CapExpiryIndex) {
		t.Fatal("declares an expiry index it could not create")
	}
	batch := &abi.Batch{Now: 100}
	batch.Put("m", "k", false, []byte{1}, 50)
	apply(t, b, batch)
	if recs, err := b.ListExpired(ctx, 60, 10); err != nil || len(recs) != 1 || recs[0].Key != "k" {
		t.Fatalf("ListExpired without the index: %+v %v", recs, err)
	}
}

// The README shows the statements Open runs, for operators who create the
// table themselves.
func TestREADME_showsTheSchema(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(readme)), " ")
	for _, stmt := range schemaDDL {
		if !strings.Contains(flat, strings.Join(strings.Fields(stmt), " ")) {
			t.Errorf("README lacks %s", stmt)
		}
	}
}

// openRefused creates topgun_maps with ddl in a fresh schema (after the
// setup statements) and checks that Open refuses it with
// CodeInvalidArgument, naming what, before adding anything to it.
func openRefused(t *testing.T, setup []string, ddl, what string) {
	t.Helper()
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	ctx := testCtx(t)
	for _, stmt := range slices.Concat(setup, []string{ddl}) {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Skipf("%s: %v", stmt, err)
		}
	}
	b, err := Open(ctx, url, testOptions(t))
	if err == nil {
		_ = b.Close()
		t.Fatalf("Open accepted a topgun_maps whose %s", what)
	}
	mustCode(t, err, abi.ErrInvalidArgument)
	if !strings.Contains(err.Error(), what) {
		t.Fatalf("error %q does not name %q", err, what)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname <> 'topgun_maps_pkey'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("indexes added to the refused table: %d, %v", n, err)
	}
}

// A key (or map) column with a nondeterministic collation makes the primary
// key treat "a" and "A" as one record: a put of "A" silently overwrote the
// record "a" (keeping the key "a"), and Get("A") found nothing. Open must
// refuse such a table instead of losing records.
func TestOpen_refusesNondeterministicCollation(t *testing.T) {
	t.Parallel()
	setup := []string{`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`}
	for _, col := range []string{"key", "map_name"} {
		t.Run(col, func(t *testing.T) {
			t.Parallel()
			ddl := strings.Replace(schemaDDL[0], col+" TEXT NOT NULL", col+" TEXT COLLATE ci NOT NULL", 1)
			openRefused(t, setup, ddl, "column "+col+" has the nondeterministic collation ci")
		})
	}
}

// An existing table that every put would fail on is reported at Open, as
// the package doc promises for a table that is not TopGun's, not at the
// first write as an internal error.
func TestOpen_refusesTableItCannotWriteTo(t *testing.T) {
	t.Parallel()
	t.Run("extra NOT NULL column", func(t *testing.T) {
		t.Parallel()
		ddl := strings.Replace(schemaDDL[0], "updated_at BIGINT NOT NULL,", "updated_at BIGINT NOT NULL, tenant TEXT NOT NULL,", 1)
		openRefused(t, nil, ddl, "column tenant is NOT NULL without a default")
	})
	t.Run("deferrable primary key", func(t *testing.T) {
		t.Parallel()
		ddl := strings.Replace(schemaDDL[0], "PRIMARY KEY (map_name, key, is_backup)", "PRIMARY KEY (map_name, key, is_backup) DEFERRABLE", 1)
		openRefused(t, nil, ddl, "primary key is DEFERRABLE")
	})
	// Extra columns the inserts can leave out are fine.
	t.Run("extra columns with defaults", func(t *testing.T) {
		t.Parallel()
		url := pgtest.FreshSchema(t)
		conn := sqlConn(t, url)
		ddl := strings.Replace(schemaDDL[0], "updated_at BIGINT NOT NULL,",
			"updated_at BIGINT NOT NULL, note TEXT, tenant TEXT NOT NULL DEFAULT 't', id BIGINT GENERATED ALWAYS AS IDENTITY, g BIGINT NOT NULL GENERATED ALWAYS AS (created_at + 1) STORED,", 1)
		if _, err := conn.Exec(testCtx(t), ddl); err != nil {
			t.Fatal(err)
		}
		b := openURL(t, url)
		var batch abi.Batch
		batch.Now = 1
		batch.Put("m", "k", false, []byte("v"), 0)
		apply(t, b, &batch)
	})
}

// An existing table whose key column has a collation from a schema that is
// not on search_path opens (before, Open named the collation unqualified
// and failed with "collation does not exist"), and scans stay in byte order.
func TestOpen_keyCollationInAnotherSchema(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	other := sqlConn(t, pgtest.FreshSchema(t))
	var otherSchema string
	if err := other.QueryRow(ctx, `SELECT current_schema()`).Scan(&otherSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, `CREATE COLLATION nat (provider = icu, locale = 'und')`); err != nil {
		t.Skipf("no ICU collation: %v", err)
	}
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	ddl := strings.Replace(schemaDDL[0], "key TEXT NOT NULL", "key TEXT COLLATE "+pgx.Identifier{otherSchema, "nat"}.Sanitize()+" NOT NULL", 1)
	if _, err := conn.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	b := openURL(t, url)
	if b.ByteOrder() {
		t.Fatal("ByteOrder() = true with a natural-language collation")
	}
	keys := []string{"b", "A", "a", "B", "_", "1"}
	var batch abi.Batch
	batch.Now = 1
	for _, k := range keys {
		batch.Put("m", k, false, []byte(k), 0)
	}
	apply(t, b, &batch)
	recs, _ := scanAll(t, b, "m", false, 2, 0)
	var got []string
	for _, r := range recs {
		got = append(got, r.Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("scan order %q, want %q", got, want)
	}
}

// TestOpen_refusesTemporarySchema puts pg_temp first on search_path, where
// an unqualified CREATE TABLE makes a temporary table: private to one
// connection and dropped with it, so acknowledged writes would vanish.
func TestOpen_refusesTemporarySchema(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	p, err := neturl.Parse(url)
	if err != nil {
		t.Skipf("test database URL is not a URL (%v); set %s to a postgres:// URL", err, pgtest.EnvURL)
	}
	q := p.Query()
	schema := q.Get("search_path")
	q.Set("search_path", "pg_temp,"+schema)
	p.RawQuery = q.Encode()
	b, err := Open(testCtx(t), p.String(), testOptions(t))
	if err == nil {
		_ = b.Close()
		t.Fatalf("Open with search_path=pg_temp,%s succeeded in schema %q; want an error, as the table would be temporary", schema, b.schema)
	}
	mustCode(t, err, abi.ErrInvalidArgument)
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "pg_temp") {
		t.Fatalf("error %q does not name pg_temp", err)
	}
}

// TestOpen_refusesUnloggedTable: PostgreSQL empties an UNLOGGED table after
// a crash, so a backend on it cannot keep the durability it declares.
func TestOpen_refusesUnloggedTable(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	ddl := strings.Replace(schemaDDL[0], "CREATE TABLE", "CREATE UNLOGGED TABLE", 1)
	if _, err := sqlConn(t, url).Exec(testCtx(t), ddl); err != nil {
		t.Fatal(err)
	}
	_, err := Open(testCtx(t), url, testOptions(t))
	mustCode(t, err, abi.ErrInvalidArgument)
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "UNLOGGED") {
		t.Fatalf("error %q does not say that the table is unlogged", err)
	}
}

// roleURL runs setup (which creates roles) on url, registers cleanup to
// run on url when the test ends (roles outlive the test's schema, so it is
// registered first), and returns url logging in as login. It skips the
// test when the server wants a password for the new role.
func roleURL(t *testing.T, url, login string, setup, cleanup []string) string {
	t.Helper()
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		for _, stmt := range cleanup {
			_, _ = c.Exec(context.Background(), stmt)
		}
	})
	ctx := testCtx(t)
	conn := sqlConn(t, url)
	for _, stmt := range setup {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.User(login)
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Skipf("cannot log in as a new role without a password on this server (%v); the test needs trust authentication, as CI has", err)
	}
	_ = c.Close(ctx)
	return u.String()
}

// A table dropped (or renamed) by an operator while the backend runs must
// not be replaced by the topgun_maps of a later schema on search_path:
// unqualified, every statement found that one (another tenant's, or
// public's), so the backend read another tenant's records and acknowledged
// writes into its table, absent from its own once recreated.
func TestBackend_droppedTableNotReplacedByAnotherSchemas(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	otherURL := pgtest.FreshSchema(t)
	other := openURL(t, otherURL)
	seed := &abi.Batch{Now: 1}
	seed.Put("m", "theirs", false, []byte("other tenant"), 5)
	apply(t, other, seed)

	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	var mine, theirs string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&mine); err != nil {
		t.Fatal(err)
	}
	if err := sqlConn(t, otherURL).QueryRow(ctx, `SELECT current_schema()`).Scan(&theirs); err != nil {
		t.Fatal(err)
	}
	both, err := pgtest.WithSearchPath(url, mine+","+theirs)
	if err != nil {
		t.Fatal(err)
	}
	b := openURL(t, both)
	if _, err := conn.Exec(ctx, `DROP TABLE topgun_maps`); err != nil {
		t.Fatal(err)
	}

	batch := &abi.Batch{Now: 2}
	batch.Put("m", "mine", false, []byte("v"), 0)
	if err := b.Apply(ctx, batch); err == nil {
		t.Error("Apply succeeded after the table was dropped")
	} else if !strings.Contains(err.Error(), "restore it") {
		t.Errorf("Apply error %q does not say what to do", err)
	}
	if err := b.ApplyChecked(ctx, batch, nil); err == nil {
		t.Error("ApplyChecked succeeded after the table was dropped")
	}
	if recs, err := b.Get(ctx, "m", false, []string{"theirs"}); err == nil {
		t.Errorf("Get read another schema's table: %v", recs)
	}
	if page, err := b.Scan(ctx, abi.ScanRequest{Map: "m", Limit: 10, MaxBytes: 1 << 20}); err == nil {
		t.Errorf("Scan read another schema's table: %v", page.Records)
	}
	if names, err := b.ListMaps(ctx); err == nil {
		t.Errorf("ListMaps read another schema's table: %v", names)
	}
	if recs, err := b.ListExpired(ctx, 10, 10); err == nil {
		t.Errorf("ListExpired read another schema's table: %v", recs)
	}
	if recs, err := other.Get(ctx, "m", false, []string{"mine"}); err != nil || len(recs) != 0 {
		t.Errorf("another schema's table holds this backend's write: %v %v", recs, err)
	}
}

// A database that takes no writes (a standby, such as a read replica's
// address given by mistake, or default_transaction_read_only set on the
// role or database) is refused at Open, saying so. Before, with the table
// in place, Open succeeded and every write failed as "database
// unavailable; retry when PostgreSQL is reachable"; without it, Open gave
// that same advice.
func TestOpen_refusesReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	// The DDL there before: none, the table without its expiry index
	// (which Open then creates), all of it.
	for _, ddl := range [][]string{nil, schemaDDL[:2], schemaDDL[:3]} {
		t.Run(fmt.Sprintf("statements=%d", len(ddl)), func(t *testing.T) {
			t.Parallel()
			url, schema := freshSchemaName(t)
			role := schema + "_ro"
			setup := []string{
				`CREATE ROLE ` + role + ` LOGIN`,
				`GRANT USAGE, CREATE ON SCHEMA ` + schema + ` TO ` + role,
				`ALTER ROLE ` + role + ` SET default_transaction_read_only = on`,
			}
			if len(ddl) > 0 {
				setup = append(setup, ddl...)
				setup = append(setup, `GRANT SELECT, INSERT, UPDATE, DELETE ON topgun_maps TO `+role)
			}
			login := roleURL(t, url, role, setup, []string{
				`DROP OWNED BY ` + role,
				`DROP ROLE IF EXISTS ` + role,
			})
			wantRefused(t, login, "a database that takes no writes", "default_transaction_read_only")
		})
	}
}

// A role that may not use what DATABASE_URL names is told so at Open, with
// the grant that fixes it. Before, a role allowed only to read the table
// (or not even that) opened it, and then every write failed as an internal
// error; and a schema the role had no USAGE on was called missing, so the
// advice was to create a schema that exists.
func TestOpen_refusesRoleWithoutRights(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		grants []string
		want   string
	}{
		{"no usage on schema", nil, "grant the role USAGE"},
		{"select only", []string{`GRANT USAGE ON SCHEMA %[1]s TO %[2]s`, `GRANT SELECT ON topgun_maps TO %[2]s`},
			"may not INSERT, UPDATE, DELETE on table"},
		{"no table rights", []string{`GRANT USAGE ON SCHEMA %[1]s TO %[2]s`}, "may not SELECT, INSERT, UPDATE, DELETE on table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, schema := freshSchemaName(t)
			role := schema + "_app"
			setup := []string{schemaDDL[0], schemaDDL[1], schemaDDL[2], `CREATE ROLE ` + role + ` LOGIN`}
			for _, g := range tc.grants {
				setup = append(setup, fmt.Sprintf(g, schema, role))
			}
			login := roleURL(t, url, role, setup, []string{
				`DROP OWNED BY ` + role,
				`DROP ROLE IF EXISTS ` + role,
			})
			wantRefused(t, login, "a role that may not use the table", tc.want)
		})
	}
}

// Sessions the database ended as idle (idle_session_timeout, SQLSTATE
// 57P05) are retried on a fresh connection like those an administrator
// ended: the statement never ran. Before, the first write and read on each
// such pooled connection failed (pgxpool checks only connections idle
// for over a second).
func TestBackend_sessionsEndedAsIdleAreRetried(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("idle_session_timeout", "200")
	u.RawQuery = q.Encode()
	b := openURL(t, u.String())
	ctx := testCtx(t)
	for i := range 3 {
		// Past the timeout: the server ends every pooled session.
		time.Sleep(500 * time.Millisecond)
		batch := &abi.Batch{Now: int64(i + 1)}
		batch.Put("m", fmt.Sprintf("k%d", i), false, []byte("v"), 0)
		if err := b.Apply(ctx, batch); err != nil {
			t.Fatalf("write %d after the sessions idled out: %v", i, err)
		}
		time.Sleep(500 * time.Millisecond)
		if recs, err := b.Get(ctx, "m", false, []string{fmt.Sprintf("k%d", i)}); err != nil || len(recs) != 1 {
			t.Fatalf("read %d after the sessions idled out: %v, %v", i, recs, err)
		}
	}
}

// A role that holds the rights the statements use opens the table, however
// it holds them: as the owner, through a group role, through PUBLIC, or as
// column privileges (UPDATE on only the columns an overwrite sets, which
// keeps map_name, key and created_at out of the role's reach). Before,
// Open asked for table-wide UPDATE and refused the last, which writes.
func TestOpen_acceptsRoleWithRightsHeldOtherwise(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		grants []string
	}{
		{"owner", []string{`ALTER TABLE topgun_maps OWNER TO %[2]s`}},
		{"group role", []string{`CREATE ROLE %[2]s_grp`, `GRANT SELECT, INSERT, UPDATE, DELETE ON topgun_maps TO %[2]s_grp`, `GRANT %[2]s_grp TO %[2]s`}},
		{"public", []string{`GRANT SELECT, INSERT, UPDATE, DELETE ON topgun_maps TO PUBLIC`}},
		{"column update", []string{`GRANT SELECT, INSERT, DELETE ON topgun_maps TO %[2]s`,
			`GRANT UPDATE (value, expiration_time, updated_at) ON topgun_maps TO %[2]s`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, schema := freshSchemaName(t)
			ctx := testCtx(t)
			role := schema + "_app"
			setup := []string{schemaDDL[0], schemaDDL[1], schemaDDL[2], `CREATE ROLE ` + role + ` LOGIN`,
				`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role}
			for _, g := range tc.grants {
				if strings.Contains(g, "%") {
					g = fmt.Sprintf(g, schema, role)
				}
				setup = append(setup, g)
			}
			login := roleURL(t, url, role, setup, []string{
				`DROP OWNED BY ` + role,
				`DROP ROLE IF EXISTS ` + role,
				`DROP OWNED BY ` + role + `_grp`, // fails, harmlessly, where there is none
				`DROP ROLE IF EXISTS ` + role + `_grp`,
			})
			b := openURL(t, login)
			for now := int64(1); now <= 2; now++ { // an insert, then an overwrite
				batch := &abi.Batch{Now: now}
				batch.Put("m", "k", false, []byte{byte(now)}, 0)
				apply(t, b, batch)
			}
			recs, err := b.Get(ctx, "m", false, []string{"k"})
			if err != nil || len(recs) != 1 || !bytes.Equal(recs[0].Value, []byte{2}) {
				t.Fatalf("Get = %v, %v; want the overwritten value", recs, err)
			}
			del := &abi.Batch{Now: 3}
			del.Delete("m", "k", false)
			apply(t, b, del)
		})
	}
}

// freshSchemaName is pgtest.FreshSchema, with the schema's name.
func freshSchemaName(t *testing.T) (url, schema string) {
	t.Helper()
	url = pgtest.FreshSchema(t)
	if err := sqlConn(t, url).QueryRow(testCtx(t), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	return url, schema
}

// wantRefused checks that Open refuses login as the caller's mistake
// (what), with an error that says want.
func wantRefused(t *testing.T, login, what, want string) {
	t.Helper()
	b, err := Open(testCtx(t), login, testOptions(t))
	if err == nil {
		_ = b.Close()
		t.Fatalf("Open accepted %s", what)
	}
	mustCode(t, err, abi.ErrInvalidArgument)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

// TestBackend_lookalikeFunctionsOfOtherRolesNotCalled plants, as a role
// that may only create objects in the table's schema (as every role may in
// public before PostgreSQL 15), functions named as those the backend calls
// with argument types they match more exactly than pg_catalog's own
// (unnest(anyarray), count("any"), array_agg(anynonarray), ...). PostgreSQL
// would pick those, running that role's code with the server's rights on
// every write; the backend's statements must call pg_catalog's.
func TestBackend_lookalikeFunctionsOfOtherRolesNotCalled(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	owner := sqlConn(t, url)
	ctx := testCtx(t)
	var schema, coll string
	if err := owner.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	// A collation that does not sort by bytes takes Open through every
	// statement it may run (the index of scans in byte order included).
	if err := owner.QueryRow(ctx, `SELECT collname FROM pg_collation WHERE collname IN ('en-x-icu', 'und-x-icu', 'en_US.utf8', 'en_US') ORDER BY 1 LIMIT 1`).Scan(&coll); err != nil {
		t.Skipf("no natural-language collation in this database: %v", err)
	}
	for _, ddl := range []string{
		strings.Replace(schemaDDL[0], "key TEXT NOT NULL", "key TEXT COLLATE "+pgx.Identifier{coll}.Sanitize()+" NOT NULL", 1),
		schemaDDL[1],
	} {
		if _, err := owner.Exec(ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}

	role := pgtest.SchemaName(t)
	base := pgtest.URL(t)
	pgtest.Exec(t, base, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN")
	t.Cleanup(func() {
		pgtest.Exec(t, base, "DROP OWNED BY "+pgx.Identifier{role}.Sanitize())
		pgtest.Exec(t, base, "DROP ROLE "+pgx.Identifier{role}.Sanitize())
	})
	pgtest.Exec(t, base, "GRANT USAGE, CREATE ON SCHEMA "+pgx.Identifier{schema}.Sanitize()+" TO "+pgx.Identifier{role}.Sanitize())
	other := sqlConn(t, url)
	called := pgx.Identifier{schema, "called"}.Sanitize()
	// Each lookalike records its call and then does what the real one does.
	record := func(fn string) string { return "INSERT INTO " + called + " VALUES ('" + fn + "');" }
	for _, stmt := range []string{
		"SET ROLE " + pgx.Identifier{role}.Sanitize(),
		"CREATE TABLE " + called + " (fn text)",
		"GRANT INSERT ON " + called + " TO PUBLIC",
		`CREATE FUNCTION unnest(text[]) RETURNS SETOF text LANGUAGE sql AS $$` + record("unnest(text[])") + `SELECT pg_catalog.unnest($1) $$`,
		`CREATE FUNCTION unnest(integer[]) RETURNS SETOF integer LANGUAGE sql AS $$` + record("unnest(integer[])") + `SELECT pg_catalog.unnest($1) $$`,
		`CREATE FUNCTION unnest(smallint[]) RETURNS SETOF smallint LANGUAGE sql AS $$` + record("unnest(smallint[])") + `SELECT pg_catalog.unnest($1) $$`,
		`CREATE FUNCTION count_step(bigint, boolean) RETURNS bigint LANGUAGE sql AS $$` + record("count(boolean)") + `SELECT $1 + CASE WHEN $2 IS NULL THEN 0 ELSE 1 END $$`,
		`CREATE AGGREGATE count(boolean) (sfunc = count_step, stype = bigint, initcond = '0')`,
		`CREATE FUNCTION agg_step(text[], text) RETURNS text[] LANGUAGE sql AS $$` + record("array_agg(text)") + `SELECT pg_catalog.array_append($1, $2) $$`,
		`CREATE AGGREGATE array_agg(text) (sfunc = agg_step, stype = text[])`,
		`CREATE FUNCTION has_table_privilege(regclass, text) RETURNS boolean LANGUAGE sql AS $$` + record("has_table_privilege") + `SELECT pg_catalog.has_table_privilege($1, $2) $$`,
		`CREATE FUNCTION has_column_privilege(regclass, text, text) RETURNS boolean LANGUAGE sql AS $$` + record("has_column_privilege") + `SELECT pg_catalog.has_column_privilege($1, $2, $3) $$`,
		`CREATE FUNCTION format(text, text, text) RETURNS text LANGUAGE sql AS $$` + record("format") + `SELECT pg_catalog.format($1, $2, $3) $$`,
		`CREATE FUNCTION pg_advisory_xact_lock(text) RETURNS void LANGUAGE sql AS $$` + record("pg_advisory_xact_lock(text)") + `SELECT pg_catalog.pg_advisory_xact_lock($1::bigint) $$`,
		// pg_catalog's own take these arguments only through an implicit
		// cast (name to text, regclass to oid).
		`CREATE FUNCTION quote_ident(name) RETURNS text LANGUAGE sql AS $$` + record("quote_ident(name)") + `SELECT pg_catalog.quote_ident($1::text) $$`,
		`CREATE FUNCTION oid_eq(oid, regclass) RETURNS boolean LANGUAGE sql AS $$` + record("=(oid, regclass)") + `SELECT $1 OPERATOR(pg_catalog.=) $2::oid $$`,
		`CREATE OPERATOR = (leftarg = oid, rightarg = regclass, function = oid_eq)`,
		`CREATE FUNCTION pg_terminate_backend(integer) RETURNS boolean LANGUAGE sql AS $$` + record("pg_terminate_backend(integer)") + `SELECT pg_catalog.pg_terminate_backend($1) $$`,
		`CREATE FUNCTION pg_notify(text, varchar) RETURNS void LANGUAGE sql AS $$` + record("pg_notify(text, varchar)") + `SELECT pg_catalog.pg_notify($1, $2) $$`,
		"RESET ROLE",
	} {
		if _, err := other.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}

	b := openURL(t, url)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	puts := &abi.Batch{Now: 1}
	puts.Put("m", "a", false, []byte("1"), 5)
	puts.Put("m", "b", false, []byte("2"), 0)
	must("Apply puts", b.Apply(ctx, puts))
	both := &abi.Batch{Now: 2}
	both.Delete("m", "a", false)
	both.Put("m", "c", false, []byte("3"), 0)
	must("Apply puts and deletes", b.Apply(ctx, both))
	dels := &abi.Batch{Now: 3}
	dels.Delete("m", "c", false)
	must("Apply deletes", b.Apply(ctx, dels))
	again := &abi.Batch{Now: 4}
	again.Delete("m", "d", false)
	again.Put("m", "d", false, []byte("4"), 0)
	must("Apply of a record deleted and put again", b.Apply(ctx, again))
	checked := &abi.Batch{Now: 5}
	checked.Put("m", "e", false, []byte("5"), 0)
	must("ApplyChecked", b.ApplyChecked(ctx, checked, []abi.Expect{{Map: "m", Key: "e"}}))
	recs, err := b.Get(ctx, "m", false, []string{"a", "b", "d", "e"})
	must("Get", err)
	if len(recs) != 3 {
		t.Errorf("Get found %d records, want 3 (b, d, e)", len(recs))
	}
	_, err = b.Scan(ctx, abi.ScanRequest{Map: "m"})
	must("Scan", err)
	_, err = b.ListMaps(ctx)
	must("ListMaps", err)
	_, err = b.ListExpired(ctx, 10, 10)
	must("ListExpired", err)
	// A session to end as that of an interrupted write.
	victim := sqlConn(t, url)
	var s session
	must("victim session", victim.QueryRow(ctx, `SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&s.pid, &s.start))
	b.fenceMu.Lock()
	b.fences = append(b.fences, s)
	b.fencing.Store(true)
	b.fenceMu.Unlock()
	_, err = b.Get(ctx, "m", false, []string{"b"})
	must("Get after ending a session", err)

	rows, err := owner.Query(ctx, "SELECT DISTINCT fn FROM "+called+" ORDER BY 1")
	must("read calls", err)
	fns, err := pgx.CollectRows(rows, pgx.RowTo[string])
	must("read calls", err)
	if len(fns) > 0 {
		t.Errorf("the backend called functions another role planted on its search_path: %s", strings.Join(fns, ", "))
	}
}
