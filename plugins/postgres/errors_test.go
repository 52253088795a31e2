package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/topgun-go/topgun/abi"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "m"} }
	cases := []struct {
		name string
		err  error
		want abi.Code
	}{
		{"admin shutdown", pg("57P01"), abi.CodeUnavailable},
		{"crash shutdown", pg("57P02"), abi.CodeUnavailable},
		{"starting up", pg("57P03"), abi.CodeUnavailable},
		{"connection failure", pg("08006"), abi.CodeUnavailable},
		{"too many connections", pg("53300"), abi.CodeUnavailable},
		{"read-only standby", pg("25006"), abi.CodeUnavailable},
		{"deadlock", pg("40P01"), abi.CodeUnavailable},
		{"lock timeout", pg("55P03"), abi.CodeUnavailable},
		{"statement timeout", pg("57014"), abi.CodeUnavailable},
		{"disk full", pg("53100"), abi.CodeResourceExhausted},
		{"invalid byte sequence", pg("22021"), abi.CodeInvalidArgument},
		{"index row too large", pg("54000"), abi.CodeInvalidArgument},
		{"notify queue full", &pgconn.PgError{Severity: "ERROR", Code: "54000", Message: "too many notifications in the NOTIFY queue"}, abi.CodeUnavailable},
		// A server whose lc_messages is not English (its text from
		// PostgreSQL 15's German catalog) names the same routine.
		{"notify queue full, lc_messages de", &pgconn.PgError{Severity: "ERROR", Code: "54000", Message: "zu viele Benachrichtigungen in NOTIFY-Schlange", Routine: "PreCommit_Notify"}, abi.CodeUnavailable},
		{"notify queue full, lc_messages ja", &pgconn.PgError{Severity: "ERROR", Code: "54000", Message: "NOTIFY キューで発生した通知イベントが多すぎます", Routine: "PreCommit_Notify"}, abi.CodeUnavailable},
		{"undefined table", pg("42P01"), abi.CodeInternal},
		{"raise exception", pg("P0001"), abi.CodeInternal},
		{"eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), abi.CodeUnavailable},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, abi.CodeUnavailable},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), abi.CodeUnavailable},
		{"closed conn", fmt.Errorf("x: %w", pgconn.ErrConnClosed), abi.CodeUnavailable},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), abi.CodeCanceled},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), abi.CodeDeadlineExceeded},
		{"other", errors.New("boom"), abi.CodeInternal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := classify(context.Background(), c.err); got != c.want {
				t.Fatalf("classify(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

func TestMapErr_keepsCauseAndCode(t *testing.T) {
	t.Parallel()
	b := &Backend{}
	cause := &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	err := b.mapErr(context.Background(), "apply", cause)
	if !errors.Is(err, abi.ErrUnavailable) {
		t.Fatalf("%v is not unavailable", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr != cause {
		t.Fatalf("cause lost: %v", err)
	}
	// The caller's context wins over the shape pgx reports.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.mapErr(ctx, "scan", &pgconn.PgError{Code: "57014"}); !errors.Is(err, abi.ErrCanceled) {
		t.Fatalf("cancelled query = %v", err)
	}
	// An *abi.Error passes through unchanged.
	in := abi.Errorf(abi.CodeNotFound, "x")
	if got := b.mapErr(context.Background(), "get", in); got != in {
		t.Fatalf("mapErr changed %v to %v", in, got)
	}
	if b.mapErr(context.Background(), "get", nil) != nil {
		t.Fatal("nil error mapped to non-nil")
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "40P01"}, true},
		{&pgconn.PgError{Code: "23505"}, false},
		{fmt.Errorf("x: %w", pgconn.ErrConnClosed), false}, // not typed as safe to retry by itself
		{io.ErrUnexpectedEOF, false},                       // may have been sent: outcome unknown
		{errors.New("boom"), false},
	} {
		if got := retryable(c.err); got != c.want {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestApplyErr checks which failures Apply reports as "may or may not be
// committed": only a connection that broke after the batch was sent.
func TestApplyErr(t *testing.T) {
	t.Parallel()
	b := &Backend{}
	ctx := context.Background()
	sentThenBroken := b.mapErr(ctx, "apply", fmt.Errorf("read: %w", io.ErrUnexpectedEOF))
	if got := b.applyErr(ctx, sentThenBroken); got == sentThenBroken || !errors.Is(got, abi.ErrUnavailable) || !errors.Is(got, io.ErrUnexpectedEOF) {
		t.Errorf("broken after sending: %v", got)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	_, refused := pgconn.Connect(ctx, "postgres://u@"+l.Addr().String()+"/db?sslmode=disable&connect_timeout=2")
	var connectErr *pgconn.ConnectError
	if !errors.As(refused, &connectErr) {
		t.Fatalf("connecting to a closed port gave %T %v", refused, refused)
	}
	for _, cause := range []error{
		refused, // never connected, so the batch was not sent
		&pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "x"}, // the server refused the statement
		&pgconn.PgError{Code: "23505"},
	} {
		in := b.mapErr(ctx, "apply", cause)
		if got := b.applyErr(ctx, in); got != in {
			t.Errorf("%v reworded as %v", in, got)
		}
	}
}
