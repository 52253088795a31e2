package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/topgun-go/topgun/abi"
)

func errClosed() error {
	return abi.Errorf(abi.CodeUnavailable, "postgres: backend is closed; open a new one")
}

// mapErr turns an error from pgx into an *abi.Error, keeping the pgx error
// as the cause so that callers can still reach *pgconn.PgError with
// errors.As. op names the operation for the message.
func (b *Backend) mapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *abi.Error
	if errors.As(err, &ae) {
		return err
	}
	if b != nil && b.closed.Load() {
		return abi.Wrap(abi.CodeUnavailable, err, "postgres: %s: backend is closed; open a new one", op)
	}
	code := classify(ctx, err)
	var pgErr *pgconn.PgError
	if code == abi.CodeInternal && b != nil && b.schema != "" && errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		// The statements name the table of the schema Open found, which
		// is what is missing (an operator dropped or renamed it).
		return abi.Wrap(code, err, "postgres: %s: table %s no longer exists (dropped or renamed since the backend opened it); restore it, or restart the server to create it empty", op, pgx.Identifier{b.schema, tableName}.Sanitize())
	}
	switch code {
	case abi.CodeCanceled:
		return abi.Wrap(code, err, "postgres: %s canceled", op)
	case abi.CodeDeadlineExceeded:
		return abi.Wrap(code, err, "postgres: %s: deadline exceeded", op)
	case abi.CodeUnavailable:
		return abi.Wrap(code, err, "postgres: %s: database unavailable; retry when PostgreSQL is reachable", op)
	case abi.CodeInvalidArgument:
		return abi.Wrap(code, err, "postgres: %s: the database rejected the input", op)
	case abi.CodeResourceExhausted:
		return abi.Wrap(code, err, "postgres: %s: the database is out of resources", op)
	}
	return abi.Wrap(code, err, "postgres: %s failed", op)
}

// classify picks the abi code for an error returned by pgx.
func classify(ctx context.Context, err error) abi.Code {
	// The caller's context decides first: pgx reports a cancelled query in
	// several shapes (a context error, a timeout, a 57014 query_canceled).
	if ctx != nil && ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return abi.CodeDeadlineExceeded
		}
		return abi.CodeCanceled
	}
	switch {
	case errors.Is(err, context.Canceled):
		return abi.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return abi.CodeDeadlineExceeded
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// A full NOTIFY queue (a listener somewhere stopped reading) shares
		// 54000 with limits of the input, but passes once it drains. The
		// message is in the server's lc_messages; the routine that raises
		// it is not translated.
		if pgErr.Code == "54000" && (pgErr.Routine == "PreCommit_Notify" || strings.Contains(pgErr.Message, "NOTIFY queue")) {
			return abi.CodeUnavailable
		}
		return classifySQLState(pgErr.Code)
	}
	if isConnectionError(err) {
		return abi.CodeUnavailable
	}
	return abi.CodeInternal
}

// classifySQLState maps a PostgreSQL error code (SQLSTATE) to an abi code.
func classifySQLState(state string) abi.Code {
	switch state {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now
		"57P05", // idle_session_timeout
		"25P03", // idle_in_transaction_session_timeout
		"53300", // too_many_connections
		"25006", // read_only_sql_transaction (a standby)
		"40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03", // lock_not_available (lock_timeout)
		"57014": // query_canceled not by the caller: statement_timeout or pg_cancel_backend
		return abi.CodeUnavailable
	case "54000": // program_limit_exceeded (e.g. an index row too large)
		return abi.CodeInvalidArgument
	}
	switch {
	case strings.HasPrefix(state, "08"): // connection exception
		return abi.CodeUnavailable
	case strings.HasPrefix(state, "22"): // data exception
		return abi.CodeInvalidArgument
	case strings.HasPrefix(state, "53"): // insufficient resources
		return abi.CodeResourceExhausted
	}
	return abi.CodeInternal
}

// isConnectionError reports whether err means the connection to the
// server failed or was lost, rather than the server rejecting a statement.
func isConnectionError(err error) bool {
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	return errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// isConnectError reports whether err is a failure to open a connection.
func isConnectError(err error) bool {
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr)
}

// retryable reports whether an operation that failed with err certainly
// did not take effect and may be run once more on another connection: the
// request never reached the server, or the server reported that it ended
// the session (so an autocommit statement was not committed).
func retryable(err error) bool {
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "57P05", "25P03", "40001", "40P01":
			// 57P05 and 25P03: the session was ended as idle (outside a
			// transaction, or inside one this backend had not committed).
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	return false
}
