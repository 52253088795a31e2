package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// tWriter sends log lines to t.Logf, so they show only for failing tests.
type tWriter struct {
	t interface{ Logf(string, ...any) }
}

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t interface{ Logf(string, ...any) }) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "storage.postgres", Level: hclog.Debug, Output: tWriter{t}})
}

func testOptions(t interface{ Logf(string, ...any) }) *Options {
	o := DefaultOptions()
	o.Logger = testLogger(t)
	o.MaxConns = 4
	return o
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openURL opens a Backend on url and closes it when t ends.
func openURL(t testing.TB, url string) *Backend {
	t.Helper()
	b, err := Open(testCtx(t), url, testOptions(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// openFresh opens a Backend on a fresh schema and returns it with its URL.
func openFresh(t testing.TB) (*Backend, string) {
	t.Helper()
	url := pgtest.FreshSchema(t)
	return openURL(t, url), url
}

// sqlConn opens a plain connection on url (so in the test's schema).
func sqlConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func apply(t testing.TB, b abi.Backend, batch *abi.Batch) {
	t.Helper()
	if err := b.Apply(testCtx(t), batch); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustCode(t testing.TB, err error, want *abi.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v (code %v), want code %v", err, abi.CodeOf(err), want.Code)
	}
}

// scanAll pages through a map with the given page bounds.
func scanAll(t testing.TB, b abi.Backend, mapName string, backup bool, limit, maxBytes int) ([]abi.Record, int) {
	t.Helper()
	var out []abi.Record
	var cursor []byte
	pages := 0
	for {
		page, err := b.Scan(testCtx(t), abi.ScanRequest{Map: mapName, Backup: backup, Cursor: cursor, Limit: limit, MaxBytes: maxBytes})
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		pages++
		if pages > 100000 {
			t.Fatal("scan does not end")
		}
		out = append(out, page.Records...)
		if page.Cursor == nil {
			return out, pages
		}
		cursor = page.Cursor
	}
}
