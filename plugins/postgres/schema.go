package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/topgun-go/topgun/abi"
)

// Table and index names. Everything this package creates starts with
// "topgun_" or "idx_topgun_".
const (
	tableName       = "topgun_maps"
	mapIndexName    = "idx_topgun_maps_map"
	expiryIndexName = "topgun_maps_expiry"
	keyIndexName    = "topgun_maps_key_bytes"
)

// keyIndexDDL serves scans in byte order when the key column's collation
// is not: the primary key index follows the collation, and ORDER BY key
// COLLATE "C" could not use it (each page would sort the whole map).
const keyIndexDDL = `CREATE INDEX IF NOT EXISTS topgun_maps_key_bytes ON topgun_maps (map_name, is_backup, key COLLATE "C")`

// The statements Open runs when the table or an index is missing. The table
// and the map index are exactly TopGun's, so a database written by TopGun's
// server is read as is and the other way round. The expiry index is ours:
// TopGun's idx_topgun_maps_expiry is on (map_name, expiration_time), which
// ListExpired cannot use, so ours has another name and both may coexist.
var schemaDDL = []string{
	`CREATE TABLE IF NOT EXISTS topgun_maps (
  map_name TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL,
  expiration_time BIGINT NOT NULL DEFAULT 0, is_backup BOOLEAN NOT NULL DEFAULT FALSE,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
  PRIMARY KEY (map_name, key, is_backup))`,
	`CREATE INDEX IF NOT EXISTS idx_topgun_maps_map ON topgun_maps (map_name)`,
	`CREATE INDEX IF NOT EXISTS topgun_maps_expiry ON topgun_maps (expiration_time) WHERE expiration_time > 0`,
}

// schemaLockKey is the transaction-level advisory lock that serialises
// schema creation between processes opening the same database at once
// (concurrent CREATE TABLE IF NOT EXISTS can otherwise fail). It is
// "topgun" in ASCII.
const schemaLockKey int64 = 0x746f7067756e

// wantColumns are the columns every statement of this package relies on,
// with the types format_type reports.
var wantColumns = map[string]string{
	"map_name":        "text",
	"key":             "text",
	"value":           "bytea",
	"expiration_time": "bigint",
	"is_backup":       "boolean",
	"created_at":      "bigint",
	"updated_at":      "bigint",
}

// allColumns are the columns the statements read and insert;
// updatedColumns those an overwrite sets (see upsertSQL).
var (
	allColumns     = []string{"map_name", "key", "value", "expiration_time", "is_backup", "created_at", "updated_at"}
	updatedColumns = []string{"value", "expiration_time", "updated_at"}
)

// orderProbe are keys whose byte order differs from most natural-language
// collations; comparing how the database sorts them with Go's byte order
// tells whether scans are in byte order.
var orderProbe = []string{"", " ", "-", "1", "10", "9", "A", "B", "Z", "_", "a", "a b", "aB", "ab", "b", "z", "\u00a0", "ß", "ä", "é", "ſ", "中", "\uffff", "😀"}

// ensureSchema creates what is missing, then checks that an existing table
// has the columns and primary key this package needs.
func (b *Backend) ensureSchema(ctx context.Context) error {
	var (
		schema                       *string
		encoding                     string
		hasTable, hasMapIdx, hasExpI bool
	)
	// quote_ident, unlike format's %I, takes a NULL current_schema() (a
	// search_path naming no existing schema) without an error, so that
	// case reaches the explanation below. pg_catalog's quote_ident takes
	// text: one of name elsewhere on search_path would match more exactly
	// (see ops.go).
	err := b.pool.QueryRow(ctx, `SELECT current_schema(), current_setting('server_encoding'),
  to_regclass(pg_catalog.quote_ident(current_schema()) || '.' || quote_ident($1::text)) IS NOT NULL,
  to_regclass(pg_catalog.quote_ident(current_schema()) || '.' || quote_ident($2::text)) IS NOT NULL,
  to_regclass(pg_catalog.quote_ident(current_schema()) || '.' || quote_ident($3::text)) IS NOT NULL`,
		tableName, mapIndexName, expiryIndexName).Scan(&schema, &encoding, &hasTable, &hasMapIdx, &hasExpI)
	if err != nil {
		return b.mapErr(ctx, "open: inspect schema", err)
	}
	if schema == nil {
		var path string
		_ = b.pool.QueryRow(ctx, `SELECT current_setting('search_path')`).Scan(&path)
		return abi.Errorf(abi.CodeInvalidArgument, "postgres: no schema to create %s in: search_path %q names no existing schema the role may use; create the schema, grant the role USAGE on it, or set search_path in DATABASE_URL", tableName, path)
	}
	if strings.HasPrefix(*schema, "pg_temp_") {
		// pg_temp first on search_path: the table would be a temporary
		// one, private to one pooled connection and dropped with it, so
		// acknowledged writes would vanish.
		return abi.Errorf(abi.CodeInvalidArgument, "postgres: search_path puts pg_temp first, so %s would be a temporary table, dropped when its connection closes; list a permanent schema first in search_path (in DATABASE_URL or the role's settings)", tableName)
	}
	b.schema, b.channel, b.sql = *schema, channelName(*schema), newStatements(*schema)
	if encoding != "UTF8" && encoding != "SQL_ASCII" {
		return abi.Errorf(abi.CodeUnsupported, "postgres: the database encoding is %s; keys are UTF-8, so use a database created with ENCODING 'UTF8'", encoding)
	}
	// An existing table is checked before anything is added to it, so a
	// foreign table that happens to be called topgun_maps is left alone.
	if hasTable {
		if err := b.checkTable(ctx, *schema); err != nil {
			return err
		}
		if err := b.checkPrivileges(ctx, *schema); err != nil {
			return err
		}
	}
	// Only what is missing is created: PostgreSQL checks the right to
	// create in the schema before it sees that a table exists, so a role
	// allowed only to read and write the table runs no DDL at all.
	var required []string
	if !hasTable {
		required = append(required, schemaDDL[0])
	}
	if !hasMapIdx {
		required = append(required, schemaDDL[1])
	}
	if len(required) > 0 {
		if err := b.createSchema(ctx, required); err != nil {
			var pgErr *pgconn.PgError
			if ro := readOnlyErr(err); ro != nil {
				return ro
			}
			if errors.As(err, &pgErr) && pgErr.Code == "42501" {
				return abi.Wrap(abi.CodeInvalidArgument, err, "postgres: open: the role may not create %s in schema %s; create the table and its index once as a role that may (the statements are in the README), or grant CREATE on the schema", tableName, *schema)
			}
			return b.schemaErr(ctx, *schema, err)
		}
		b.log.Info("created missing schema objects", "schema", *schema, "table", !hasTable, "map_index", !hasMapIdx)
	}
	b.expiryIndex = true
	if !hasExpI {
		err := b.createSchema(ctx, schemaDDL[2:])
		if ro := readOnlyErr(err); ro != nil {
			return ro
		}
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			b.log.Info("created missing schema objects", "schema", *schema, "expiry_index", true)
		case errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "55P03"):
			// Only the table's owner may add an index, and a busy table
			// may not give the lock in time: the backend works without
			// it, finding expired records by a scan.
			b.expiryIndex = false
			b.log.Warn("cannot create the expiry index; expired records are found by scanning the table until it exists",
				"schema", *schema, "index", expiryIndexName, "error", err)
		default:
			return b.schemaErr(ctx, *schema, err)
		}
	}
	if !hasTable {
		// Another process may have created it first, in another shape.
		if err := b.checkTable(ctx, *schema); err != nil {
			return err
		}
	}
	// A write that changes nothing, sent as writes are (a pooler that
	// routes reads to standbys sends it to the primary, as it would a
	// client write).
	if _, err := b.pool.Exec(ctx, "UPDATE "+pgx.Identifier{*schema, tableName}.Sanitize()+" SET updated_at = updated_at WHERE false"); err != nil {
		if ro := readOnlyErr(err); ro != nil {
			return ro
		}
		return b.mapErr(ctx, "open: check that the table takes writes", err)
	}
	return b.checkOrder(ctx, *schema)
}

// readOnlyErr explains err when it says the database takes no writes (a
// standby, such as a read replica's address, or default_transaction_read_only
// set): the backend would open, and /ready pass, but every write fail as
// if the database were unreachable. It returns nil for other errors.
func readOnlyErr(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		return nil
	}
	return abi.Wrap(abi.CodeInvalidArgument, err, "postgres: the database takes no writes (it is a standby, or default_transaction_read_only is on for the role, the database or in DATABASE_URL); point DATABASE_URL at the primary (with several hosts, add target_session_attrs=read-write) or turn default_transaction_read_only off")
}

// createSchema runs stmts in one transaction, serialised with other
// processes doing the same.
func (b *Backend) createSchema(ctx context.Context, stmts []string) error {
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		// Bounded waits: another process may be creating an index on a
		// large table, or hold a lock on it.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '60s'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_catalog.pg_advisory_xact_lock($1::int8)`, schemaLockKey); err != nil {
			return err
		}
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
}

// schemaErr maps a failure to create schema objects.
func (b *Backend) schemaErr(ctx context.Context, schema string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
		return abi.Wrap(abi.CodeUnavailable, err, "postgres: open: waited 60s for a lock on %s.%s held by another session (an index build or a long transaction); retry later", schema, tableName)
	}
	return b.mapErr(ctx, "open: create table "+tableName+" in schema "+schema, err)
}

// checkTable verifies the columns and the primary key of an existing table,
// so that a table of the same name made by something else is reported at
// Open rather than at the first write.
func (b *Backend) checkTable(ctx context.Context, schema string) error {
	table := pgx.Identifier{schema, tableName}.Sanitize()
	// ::oid: pg_catalog has no = of oid and regclass, so one planted
	// elsewhere on search_path would be picked (see ops.go); so below.
	rows, err := b.pool.Query(ctx, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
  a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', coalesce(co.collname::text, ''), coalesce(co.collisdeterministic, true)
FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attrelid = $1::regclass::oid AND a.attnum > 0 AND NOT a.attisdropped`, table)
	if err != nil {
		return b.mapErr(ctx, "open: inspect table "+table, err)
	}
	got := map[string]string{}
	var problems []string
	for rows.Next() {
		var name, typ, coll string
		var notNull, filled, deterministic bool
		if err := rows.Scan(&name, &typ, &notNull, &filled, &coll, &deterministic); err != nil {
			rows.Close()
			return b.mapErr(ctx, "open: inspect table "+table, err)
		}
		_, known := wantColumns[name]
		switch {
		case known && !deterministic:
			// The primary key would take keys (or maps) that differ only
			// in case or accents for one record, so that a put of one
			// overwrites the other.
			problems = append(problems, fmt.Sprintf("column %s has the nondeterministic collation %s, under which distinct names are equal", name, coll))
		case !known && notNull && !filled:
			// Every insert leaves it NULL, so every put would fail.
			problems = append(problems, fmt.Sprintf("column %s is NOT NULL without a default, and the backend does not fill it", name))
		}
		if !notNull {
			typ += " (nullable)"
		}
		got[name] = typ
	}
	if err := rows.Err(); err != nil {
		return b.mapErr(ctx, "open: inspect table "+table, err)
	}
	for name, want := range wantColumns {
		switch have, ok := got[name]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("column %s is missing", name))
		case have != want:
			problems = append(problems, fmt.Sprintf("column %s is %s, expected %s NOT NULL", name, have, want))
		}
	}
	var pk []string
	var deferrable bool
	err = b.pool.QueryRow(ctx, `SELECT coalesce(pg_catalog.array_agg(a.attname::text ORDER BY k.ord), '{}'), coalesce(bool_or(c.condeferrable), false)
FROM pg_constraint c CROSS JOIN LATERAL pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
WHERE c.conrelid = $1::regclass::oid AND c.contype = 'p'`, table).Scan(&pk, &deferrable)
	if err != nil {
		return b.mapErr(ctx, "open: inspect table "+table, err)
	}
	if !slices.Equal(pk, []string{"map_name", "key", "is_backup"}) {
		problems = append(problems, fmt.Sprintf("primary key is (%s), expected (map_name, key, is_backup)", strings.Join(pk, ", ")))
	} else if deferrable {
		// ON CONFLICT cannot use a deferrable constraint: every put would fail.
		problems = append(problems, "primary key is DEFERRABLE, which INSERT ... ON CONFLICT cannot use")
	}
	var persistence string
	err = b.pool.QueryRow(ctx, `SELECT relpersistence::text FROM pg_class WHERE oid = $1::regclass::oid`, table).Scan(&persistence)
	if err != nil {
		return b.mapErr(ctx, "open: inspect table "+table, err)
	}
	if persistence == "u" {
		// PostgreSQL empties an unlogged table after a crash, while the
		// backend declares every applied batch durable.
		problems = append(problems, "it is UNLOGGED, so a database crash empties it (make it durable with ALTER TABLE "+table+" SET LOGGED)")
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return abi.Errorf(abi.CodeInvalidArgument, "postgres: table %s exists but is not a topgun table: %s; drop or rename it, or point search_path at another schema", table, strings.Join(problems, "; "))
	}
	return nil
}

// checkPrivileges reports the rights on an existing table that the role
// lacks: without them Open succeeded, and every write (or every
// operation) failed later as an internal error.
func (b *Backend) checkPrivileges(ctx context.Context, schema string) error {
	table := pgx.Identifier{schema, tableName}.Sanitize()
	var role string
	var missing []string
	// Per column, as the statements need them (has_column_privilege also
	// counts table-wide grants): a role may hold UPDATE on only the columns
	// an overwrite sets, and write as well as one with UPDATE on the table.
	err := b.pool.QueryRow(ctx, `SELECT current_user::text, coalesce(pg_catalog.array_agg(p ORDER BY o) FILTER (WHERE NOT CASE p
  WHEN 'DELETE' THEN pg_catalog.has_table_privilege($1::regclass, p)
  ELSE (SELECT bool_and(pg_catalog.has_column_privilege($1::regclass, c, p)) FROM pg_catalog.unnest(CASE p WHEN 'UPDATE' THEN $3::text[] ELSE $2::text[] END) AS c)
END), '{}')
FROM pg_catalog.unnest('{SELECT,INSERT,UPDATE,DELETE}'::text[]) WITH ORDINALITY AS r(p, o)`, table, allColumns, updatedColumns).Scan(&role, &missing)
	if err != nil {
		return b.mapErr(ctx, "open: inspect privileges on "+table, err)
	}
	if len(missing) > 0 {
		return abi.Errorf(abi.CodeInvalidArgument, "postgres: open: the role %s may not %s on table %s; GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s",
			role, strings.Join(missing, ", "), table, table, pgx.Identifier{role}.Sanitize())
	}
	return nil
}

// checkOrder finds out whether the key column's collation sorts keys by
// their bytes, as the other backends do. If it does not, scans still page
// exactly once, in the collation's order, and a warning is logged: an
// order-independent COLLATE "C" would lose the primary key index.
func (b *Backend) checkOrder(ctx context.Context, schema string) error {
	table := pgx.Identifier{schema, tableName}.Sanitize()
	var coll, collSchema string
	err := b.pool.QueryRow(ctx, `SELECT co.collname::text, n.nspname::text FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation
JOIN pg_namespace n ON n.oid = co.collnamespace
WHERE a.attrelid = $1::regclass::oid AND a.attname = 'key'`, table).Scan(&coll, &collSchema)
	if err != nil {
		return b.mapErr(ctx, "open: inspect collation of "+table, err)
	}
	collate := ""
	if coll != "default" {
		// Qualified: the collation's schema need not be on search_path,
		// and one of the same name there would be another collation.
		collate = " COLLATE " + pgx.Identifier{collSchema, coll}.Sanitize()
	}
	var got []string
	err = b.pool.QueryRow(ctx, `SELECT pg_catalog.array_agg(k`+collate+` ORDER BY k`+collate+`) FROM pg_catalog.unnest($1::text[]) AS p(k)`, orderProbe).Scan(&got)
	if err != nil {
		return b.mapErr(ctx, "open: inspect collation of "+table, err)
	}
	want := slices.Clone(orderProbe)
	sort.Strings(want)
	b.byteOrder = slices.Equal(got, want)
	if b.byteOrder {
		b.scanFirst, b.scanAfter = scanSQL("")
		b.scanFirst, b.scanAfter = qualify(b.scanFirst, schema), qualify(b.scanAfter, schema)
		return nil
	}
	// Every backend scans in byte order (the server pages by comparing
	// keys as bytes): order by COLLATE "C", from an index of our own.
	b.scanFirst, b.scanAfter = scanSQL(` COLLATE "C"`)
	b.scanFirst, b.scanAfter = qualify(b.scanFirst, schema), qualify(b.scanAfter, schema)
	var hasIdx bool
	if err := b.pool.QueryRow(ctx, `SELECT to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text)) IS NOT NULL`, schema, keyIndexName).Scan(&hasIdx); err != nil {
		return b.mapErr(ctx, "open: inspect schema", err)
	}
	if hasIdx {
		return nil
	}
	err = b.createSchema(ctx, []string{keyIndexDDL})
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		b.log.Info("created an index for scans in byte order: the key column's collation orders otherwise",
			"schema", schema, "index", keyIndexName, "collation", coll)
	case errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "55P03"):
		b.log.Warn("cannot create the index for scans in byte order; each scan page sorts the map until it exists",
			"schema", schema, "index", keyIndexName, "collation", coll, "error", err)
	default:
		return b.schemaErr(ctx, schema, err)
	}
	return nil
}
