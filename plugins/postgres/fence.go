package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/topgun-go/topgun/abi"
)

// A write cut off while its statement may still be on its way (ctx ended,
// or the connection broke, with the statement sent) can commit later: pgx
// closes the connection, but the kernel goes on sending what it held, and
// PostgreSQL runs a statement that arrives after the link came back, even
// minutes later. The caller, told the outcome is unknown, reads storage
// to find it out, and may write the records again: a commit landing after
// that read, or over that write, diverges from what the caller knows, or
// undoes an acknowledged write.
//
// So the session of such a write is fenced: the next operation first ends
// it (pg_terminate_backend) and waits until it is gone. From then on it
// can commit nothing, and what storage holds is the outcome. Sessions are
// named by pid and start time, so that a pid the server has given to
// another session since is left alone.

// session is a database session: its backend pid and start time.
type session struct {
	pid   uint32
	start time.Time
}

// sessionKey keys a connection's session in its pgconn.CustomData.
const sessionKey = "topgun.session"

// noteSession is the pool's AfterConnect: it records the session of a new
// connection. Behind a pooler (PgBouncer), which gives the client a pid of
// its own, the session the query ran in is not the connection's: none is
// recorded, and the connection is used without a fence. So it is when
// the session runs as a role without the rights of the one that logged in
// (SET ROLE, by a role setting or the URL's options): pg_stat_activity
// then hides its start time, and pg_terminate_backend would refuse it.
func noteSession(ctx context.Context, c *pgx.Conn) error {
	var (
		pid   uint32
		start *time.Time
	)
	err := c.QueryRow(ctx, `SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&pid, &start)
	if err == nil {
		if pid == c.PgConn().PID() && start != nil {
			c.PgConn().CustomData()[sessionKey] = session{pid: pid, start: *start}
		}
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || errors.Is(err, pgx.ErrNoRows) {
		return nil // the server answered: the connection is fine
	}
	return err
}

// fenceWait bounds the wait for fenced sessions to end; a backend process
// ends at once unless stuck, and the operation waiting fails after it.
const fenceWait = 10 * time.Second

const fenceSQL = `SELECT pg_catalog.count(pg_terminate_backend(a.pid)) FROM pg_stat_activity AS a
JOIN unnest($1::int8[], $2::timestamptz[]) AS f(pid, start) ON a.pid = f.pid AND a.backend_start = f.start`

// transient reports whether an SQLSTATE may pass on retry.
func transient(state string) bool {
	c := classifySQLState(state)
	return c == abi.CodeUnavailable || c == abi.CodeResourceExhausted
}

// onWriteConn runs one attempt of a write, f, on a connection of the pool,
// and gives it back with releaseWrite.
func (b *Backend) onWriteConn(ctx context.Context, f func(c *pgxpool.Conn) error) (err error) {
	c, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { b.releaseWrite(c, err) }()
	return f(c)
}

// releaseWrite gives back the connection of a write attempt that ended
// with err, fencing its session when the attempt failed and left it
// closed: a statement it sent may still be on its way.
func (b *Backend) releaseWrite(c *pgxpool.Conn, err error) {
	if err != nil && c.Conn().PgConn().IsClosed() {
		if s, ok := c.Conn().PgConn().CustomData()[sessionKey].(session); ok {
			b.fenceMu.Lock()
			b.fences = append(b.fences, s)
			b.fencing.Store(true)
			b.fenceMu.Unlock()
		}
	}
	c.Release()
}

// endFenced ends the fenced sessions and waits until they are gone (see
// releaseWrite); begin runs it before every operation while one is
// pending. A failure to reach the database fails the operation; a lasting
// refusal of the database (no right to end the session) drops the fence
// with a warning, as every operation would fail for good.
func (b *Backend) endFenced(ctx context.Context) error {
	// One at a time, but a waiter gives up with its ctx: under a mutex an
	// operation would wait up to fenceWait per operation ahead of it,
	// whatever its deadline.
	select {
	case b.fenceTurn <- struct{}{}:
	case <-ctx.Done():
		return abi.ContextError(ctx)
	}
	defer func() { <-b.fenceTurn }()
	b.fenceMu.Lock()
	n := len(b.fences)
	pids := make([]int64, n)
	starts := make([]time.Time, n)
	for i, s := range b.fences {
		pids[i], starts[i] = int64(s.pid), s.start
	}
	b.fenceMu.Unlock()
	if n == 0 {
		return nil
	}
	// Bounded whatever ctx is: the operations behind it wait for it.
	ctx, cancel := context.WithTimeout(ctx, fenceWait)
	defer cancel()
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var left int64
		err := b.pool.QueryRow(ctx, fenceSQL, pids, starts).Scan(&left)
		if err != nil && retryable(err) && ctx.Err() == nil {
			// The pooled connection it ran on was dead (a session the
			// database ended as idle): the next try takes another.
			left = int64(len(pids))
			err = nil
		}
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && ctx.Err() == nil && !transient(pgErr.Code) {
				b.log.Warn("cannot end the session of an interrupted write; a write it sent may still commit later", "sessions", len(pids), "error", err)
				break
			}
			return b.mapErr(ctx, "end the session of an interrupted write", err)
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return abi.Wrap(abi.CodeUnavailable, ctx.Err(), "postgres: the session of an interrupted write (pid %d) has not ended yet; retry later", pids[0])
		case <-time.After(wait):
		}
	}
	b.log.Debug("ended the sessions of interrupted writes", "sessions", len(pids))
	// Those fenced meanwhile (appended after the first n) stay.
	b.fenceMu.Lock()
	b.fences = append(b.fences[:0], b.fences[n:]...)
	b.fencing.Store(len(b.fences) > 0)
	b.fenceMu.Unlock()
	return nil
}
