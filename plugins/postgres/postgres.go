package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/topgun-go/topgun/abi"
)

// Name is the backend name reported by Describe and used in STORAGE_BACKEND.
const Name = "postgres"

// Defaults used by DefaultOptions and for zero fields of Options.
const (
	DefaultMaxConns       = 8
	DefaultConnectTimeout = 10 * time.Second
)

// Options configure a Backend. The zero value of a field means its default.
type Options struct {
	// MaxConns is the size of the connection pool. It overrides any
	// pool_max_conns in the URL. Zero means DefaultMaxConns.
	MaxConns int32

	// ConnectTimeout bounds each attempt to open a connection, including
	// the first one made by Open, so that an unreachable database gives a
	// prompt error instead of a hang. A connect_timeout in the URL takes
	// precedence. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// Logger receives the backend's logs. Nil means no logging.
	Logger hclog.Logger
}

// DefaultOptions returns the options used when Open is given nil.
func DefaultOptions() *Options {
	return &Options{MaxConns: DefaultMaxConns, ConnectTimeout: DefaultConnectTimeout, Logger: hclog.NewNullLogger()}
}

// Validate reports the first invalid field of o.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	if o.MaxConns < 0 {
		return abi.Errorf(abi.CodeInvalidArgument, "postgres: MaxConns is %d; use a positive pool size, or 0 for the default %d", o.MaxConns, DefaultMaxConns)
	}
	if o.ConnectTimeout < 0 {
		return abi.Errorf(abi.CodeInvalidArgument, "postgres: ConnectTimeout is %s; use a positive duration, or 0 for the default %s", o.ConnectTimeout, DefaultConnectTimeout)
	}
	return nil
}

// withDefaults returns a copy of o with zero fields set to their defaults.
func (o *Options) withDefaults() Options {
	d := DefaultOptions()
	if o == nil {
		return *d
	}
	out := *o
	if out.MaxConns == 0 {
		out.MaxConns = d.MaxConns
	}
	if out.ConnectTimeout == 0 {
		out.ConnectTimeout = d.ConnectTimeout
	}
	if out.Logger == nil {
		out.Logger = d.Logger
	}
	return out
}

// Backend stores records in the table topgun_maps of a PostgreSQL database
// through a pgx connection pool. It is safe for concurrent use, and several
// processes may share one database.
type Backend struct {
	pool   *pgxpool.Pool
	log    hclog.Logger
	closed atomic.Bool

	// maxRetries bounds retries after dead pooled connections.
	maxRetries int
	// maxStatementBytes is maxStatementBytes, lowered by tests.
	maxStatementBytes int

	// byteOrder is true when the key column's collation orders keys by
	// their bytes (C, POSIX, C.UTF-8); otherwise scans order by COLLATE
	// "C", served by keyIndexName.
	byteOrder bool
	// scanFirst and scanAfter are the scan statements for that order.
	scanFirst, scanAfter string
	// sql are the other statements, naming the table of schema (see
	// qualify).
	sql statements
	// expiryIndex is false when the role could not create the expiry
	// index (not the table's owner, or the table locked): ListExpired
	// then scans the table.
	expiryIndex bool

	// schema holds the table; origin tells this backend's notifications
	// from other processes' (see shared.go).
	schema, origin, channel string
	// stop ends the listeners of Watch at Close. listeners are those
	// running, guarded by watchMu (see Close). closeDone is closed when
	// the first Close returns, for the others to wait for.
	stop      chan struct{}
	closeDone chan struct{}
	watchMu   sync.Mutex
	listeners map[*listener]struct{}
	// watchIdle and watchTimeout are watchIdle and watchTimeout, lowered
	// by tests.
	watchIdle, watchTimeout time.Duration

	// fences are the sessions of interrupted writes that the next
	// operation ends first; fencing is set while there are some (see
	// fence.go). fenceMu guards fences; fenceTurn is held by the one
	// operation ending them, which the others wait for, or for their ctx.
	fenceMu   sync.Mutex
	fences    []session
	fencing   atomic.Bool
	fenceTurn chan struct{}
}

var _ abi.Backend = (*Backend)(nil)

// Open connects to the database at databaseURL (a postgres:// URL or a
// keyword/value connection string, as DATABASE_URL holds), checks that it
// is usable, and creates the table topgun_maps and its indexes if they are
// missing. It never touches objects outside the topgun_ namespace. The
// first schema on the connection's search_path holds the table.
//
// Open fails with CodeInvalidArgument for a missing or malformed URL and
// with CodeUnavailable when the database cannot be reached within
// opts.ConnectTimeout (or before ctx is done).
func Open(ctx context.Context, databaseURL string, opts *Options) (*Backend, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	cfg, err := parseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = o.MaxConns
	// Keys, map names and notifications are sent as UTF-8. Another client
	// encoding (from the URL, or the role's or database's settings) makes
	// PostgreSQL convert them: LATIN1 stores every non-ASCII key doubly
	// encoded, unlike what TopGun's server and other servers read and
	// write, and other encodings refuse valid keys.
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["client_encoding"] = "UTF8"
	if cfg.MinConns > cfg.MaxConns {
		cfg.MinConns = cfg.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = o.ConnectTimeout
	}
	cfg.AfterConnect = noteSession
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, abi.Wrap(abi.CodeInvalidArgument, err, "postgres: cannot configure a connection pool for %s", RedactURL(databaseURL))
	}
	b := &Backend{pool: pool, log: o.Logger, maxRetries: int(cfg.MaxConns) + 1, maxStatementBytes: maxStatementBytes,
		origin: newOrigin(), stop: make(chan struct{}), closeDone: make(chan struct{}), fenceTurn: make(chan struct{}, 1),
		watchIdle: watchIdle, watchTimeout: watchTimeout}

	// Bound the first connection even when ctx has no deadline: with
	// several hosts pgx may try each in turn.
	pingCtx, cancel := context.WithTimeout(ctx, 2*cfg.ConnConfig.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		if ctx.Err() != nil {
			return nil, b.mapErr(ctx, "open", err)
		}
		if code := classify(ctx, err); code != abi.CodeUnavailable && code != abi.CodeDeadlineExceeded {
			// The server answered and refused us (authentication, missing
			// database, bad options).
			return nil, abi.Wrap(abi.CodeInvalidArgument, err, "postgres: the database at %s refused the connection; check the user, password and database name in DATABASE_URL", RedactURL(databaseURL))
		}
		return nil, abi.Wrap(abi.CodeUnavailable, err, "postgres: cannot connect to the database at %s (connect timeout %s); check that PostgreSQL is running and DATABASE_URL is right", RedactURL(databaseURL), cfg.ConnConfig.ConnectTimeout)
	}
	if err := b.ensureSchema(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	b.log.Debug("opened", "url", RedactURL(databaseURL), "max_conns", o.MaxConns, "byte_order", b.byteOrder)
	return b, nil
}

// CheckURL reports, without connecting, whether databaseURL is a
// connection string Open can use; its error, like Open's, never shows the
// password.
func CheckURL(databaseURL string) error {
	_, err := parseURL(databaseURL)
	return err
}

// parseURL parses databaseURL into a pool configuration, or says what is
// wrong with it (CodeInvalidArgument, without the password).
func parseURL(databaseURL string) (*pgxpool.Config, error) {
	if strings.TrimSpace(databaseURL) == "" {
		return nil, abi.Errorf(abi.CodeInvalidArgument, "postgres: the database URL is empty; set DATABASE_URL to a URL such as postgres://user:password@host:5432/database")
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx masks the password only as it expects it spelled (not
		// "password = x", which libpq's syntax allows): its message is
		// rebuilt around RedactURL's, and pgx's error (whose ConnString
		// holds the password) is not kept.
		detail := "it cannot be parsed"
		var pce *pgconn.ParseConfigError
		if errors.As(err, &pce) {
			if d, ok := strings.CutPrefix(pce.Error(), pgconn.NewParseConfigError(pce.ConnString, "", nil).Error()); ok {
				detail = d
			}
		}
		return nil, abi.Errorf(abi.CodeInvalidArgument, "postgres: the database URL is not valid: cannot parse `%s`: %s; expected a URL such as postgres://user:password@host:5432/database", RedactURL(databaseURL), detail)
	}
	return cfg, nil
}

// Describe reports a durable, shared backend with atomic batches and, when
// the role could create it, an index on expiration times.
func (b *Backend) Describe() abi.Description {
	return abi.Description{
		Name:         Name,
		ABIMajor:     abi.VersionMajor,
		ABIMinor:     abi.VersionMinor,
		Capabilities: b.capabilities(),
	}
}

func (b *Backend) capabilities() abi.Capability {
	c := abi.CapDurable | abi.CapShared | abi.CapAtomicBatch
	if b.expiryIndex {
		c |= abi.CapExpiryIndex
	}
	return c
}

// ByteOrder reports whether the key column's own collation orders keys by
// their bytes. Scans are in byte order either way; when it does not, they
// order by COLLATE "C", with an index of their own (see the package doc).
func (b *Backend) ByteOrder() bool { return b.byteOrder }

// Close stops the listeners of Watch and closes the pool. It waits for
// operations in flight to release their connections, for calls of fn in
// progress to return, and for the listeners to close their connections:
// once it returns, no listening session is left and fn is neither running
// nor called again. fn may call Close, which then does not wait for that
// call of fn (it closes its listener's connection itself); a fn that
// blocks holds Close up until it returns, so fn must not wait for anything
// the caller of Close does after Close returns. Close is idempotent: a
// second Close waits for the first to end, unless called from fn.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		if !b.inFn() {
			<-b.closeDone
		}
		return nil
	}
	defer close(b.closeDone)
	close(b.stop)
	b.stopListeners()
	b.pool.Close()
	return nil
}

// begin checks ctx and the closed flag at the start of every operation.
func (b *Backend) begin(ctx context.Context) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	if b.closed.Load() {
		return errClosed()
	}
	if b.fencing.Load() {
		return b.endFenced(ctx)
	}
	return nil
}

// retry runs fn, and again when an attempt failed because the pooled
// connection it used was dead, which is what happens to idle connections
// after a database restart or a terminated session: each such attempt
// discards one dead connection, so there are at most pool size + 1 of them.
// A read (idempotent) is retried after any failure of an established
// connection; a write only when it certainly took no effect. A failure to
// open a new connection ends the retries at once: the database is down.
func (b *Backend) retry(ctx context.Context, op string, idempotent bool, fn func(context.Context) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = fn(ctx)
		if err == nil || attempt >= b.maxRetries || ctx.Err() != nil || b.closed.Load() || isConnectError(err) ||
			!(retryable(err) || (idempotent && isConnectionError(err))) {
			break
		}
		b.log.Debug("retrying on another connection", "op", op, "attempt", attempt+1, "error", err)
	}
	return b.mapErr(ctx, op, err)
}

// StorageID names the table this backend stores records in, the same for
// every backend on that table whatever its URL says (another host name,
// user or option): the cluster's start time, the database's oid and the
// table's oid. A copy uses it to refuse a source and a destination that are
// one table.
func (b *Backend) StorageID(ctx context.Context) (string, error) {
	if b.closed.Load() {
		return "", abi.Errorf(abi.CodeUnavailable, "postgres: backend is closed")
	}
	var id string
	err := b.pool.QueryRow(ctx, `SELECT pg_catalog.concat_ws('/', pg_catalog.pg_postmaster_start_time(),
  (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()),
  pg_catalog.to_regclass($1::pg_catalog.text)::pg_catalog.oid)`,
		pgx.Identifier{b.schema, tableName}.Sanitize()).Scan(&id)
	if err != nil {
		return "", b.mapErr(ctx, "storage id", err)
	}
	return id, nil
}

// CountRecords returns how many records the table holds, primary and
// backup, whatever their map names: a copy compares it with what its scans
// reached, since ListMaps leaves out maps without a primary record and
// names no operation takes.
func (b *Backend) CountRecords(ctx context.Context) (int64, error) {
	if err := b.begin(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := b.retry(ctx, "count records", true, func(ctx context.Context) error {
		return b.pool.QueryRow(ctx, `SELECT pg_catalog.count(*) FROM `+pgx.Identifier{b.schema, tableName}.Sanitize()).Scan(&n)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
