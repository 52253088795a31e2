package pgtest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithSearchPath(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=s1&sslmode=disable"},
		{"postgres://u@h/db?search_path=old", "postgres://u@h/db?search_path=s1"},
		{"host=h dbname=db", "host=h dbname=db search_path=s1"},
	}
	for _, c := range cases {
		got, err := WithSearchPath(c.in, "s1")
		if err != nil || got != c.want {
			t.Errorf("WithSearchPath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestSchemaName(t *testing.T) {
	t.Parallel()
	a, b := SchemaName(t), SchemaName(t)
	if a == b || !strings.HasPrefix(a, SchemaPrefix) || len(a) > 63 {
		t.Fatalf("SchemaName = %q, %q", a, b)
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			t.Fatalf("SchemaName %q has %q", a, r)
		}
	}
}

func TestFreshSchema(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("uses", func(t *testing.T) {
		u := FreshSchema(t)
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, SchemaPrefix) {
			t.Fatalf("current_schema = %q", name)
		}
		if _, err := conn.Exec(context.Background(), `CREATE TABLE t (x int)`); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		t.Skip("no schema was created")
	}
	conn, err := pgx.Connect(context.Background(), URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, name).Scan(&exists); err != nil || exists {
		t.Fatalf("schema %s still exists after the test (%v)", name, err)
	}
}

// recordingTB records Skipf and Fatalf instead of ending the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                           {}
func (r *recordingTB) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recordingTB) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestURL_unreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	t.Setenv(EnvURL, "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=2")
	t.Setenv(EnvRequire, "")
	r := &recordingTB{TB: t}
	URL(r)
	if r.failed != "" || !strings.Contains(r.skipped, EnvURL) {
		t.Fatalf("unreachable database: skipped %q, failed %q; want a skip naming %s", r.skipped, r.failed, EnvURL)
	}

	t.Setenv(EnvRequire, "1")
	r = &recordingTB{TB: t}
	URL(r)
	if r.skipped != "" || !strings.Contains(r.failed, EnvURL) {
		t.Fatalf("unreachable database with %s=1: skipped %q, failed %q; want a failure", EnvRequire, r.skipped, r.failed)
	}
}
