// Package pgtest helps tests that need PostgreSQL: it finds the test
// database, skips (or fails, in CI) when it is unreachable, and gives each
// test a fresh schema.
//
// The database is TOPGUN_TEST_DATABASE_URL, by default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. When it cannot be
// reached, tests skip with a message naming that variable, unless
// TOPGUN_REQUIRE_POSTGRES=1, when they fail instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by this package.
const (
	EnvURL     = "TOPGUN_TEST_DATABASE_URL"
	EnvRequire = "TOPGUN_REQUIRE_POSTGRES"
)

// DefaultURL is the test database used when TOPGUN_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// SchemaPrefix starts the name of every schema FreshSchema creates.
const SchemaPrefix = "topgun_test_"

const timeout = 10 * time.Second

// TB is the part of testing.TB this package uses. *testing.T, *testing.B
// and the conformance suite's own runner satisfy it.
type TB interface {
	Helper()
	Name() string
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

var probes sync.Map // url -> *probe

type probe struct {
	once sync.Once
	err  error
}

// URL returns the test database URL. It skips t when the database is
// unreachable, or fails it when TOPGUN_REQUIRE_POSTGRES=1. The database is
// probed once per process.
func URL(t TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		u = DefaultURL
	}
	v, _ := probes.LoadOrStore(u, &probe{})
	p := v.(*probe)
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		conn, err := connect(ctx, u)
		if err != nil {
			p.err = err
			return
		}
		p.err = conn.Ping(ctx)
		_ = conn.Close(ctx)
	})
	if p.err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("pgtest: PostgreSQL is required (%s=1) but unreachable: %v; set %s to a reachable database", EnvRequire, p.err, EnvURL)
		} else {
			t.Skipf("pgtest: skipping, PostgreSQL unreachable (%v); set %s to a reachable database (and %s=1 to fail instead of skipping)", p.err, EnvURL, EnvRequire)
		}
	}
	return u
}

func connect(ctx context.Context, u string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > timeout {
		cfg.ConnectTimeout = timeout
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// Exec runs one statement on the test database (not in any fresh schema),
// failing t on error. It is for test setup such as creating a schema.
func Exec(t TB, databaseURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := connect(ctx, databaseURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// FreshSchema creates a uniquely named, empty schema in the test database,
// drops it (with everything in it) when t ends, and returns a URL whose
// connections use it as search_path. It skips or fails t like URL.
func FreshSchema(t TB) string {
	t.Helper()
	base := URL(t)
	name := SchemaName(t)
	Exec(t, base, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		conn, err := connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	u, err := WithSearchPath(base, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// SchemaName returns a new schema name: SchemaPrefix, a short form of the
// test's name and random hex, within PostgreSQL's 63-byte identifier limit.
func SchemaName(t TB) string {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("pgtest: random schema name: %v", err)
	}
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 30 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return SchemaPrefix + b.String() + "_" + hex.EncodeToString(rnd[:])
}

// WithSearchPath returns databaseURL with search_path set to schema, as a
// run-time parameter every connection sends at startup. It accepts
// postgres:// URLs and keyword/value connection strings.
func WithSearchPath(databaseURL, schema string) (string, error) {
	if !strings.Contains(databaseURL, "://") {
		return databaseURL + " search_path=" + schema, nil
	}
	p, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("pgtest: cannot add search_path to the database URL: %w", err)
	}
	q := p.Query()
	q.Set("search_path", schema)
	p.RawQuery = q.Encode()
	return p.String(), nil
}
