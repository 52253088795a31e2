package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"postgres://user:s3cret@db.example:5432/app?sslmode=require", "postgres://user:xxxxx@db.example:5432/app?sslmode=require"},
		{"postgresql://user:p%40ss%3Aword@host/db", "postgresql://user:xxxxx@host/db"},
		{"postgres://user@host/db", "postgres://user@host/db"},
		{"postgres://host/db?user=u&password=s3cret&sslmode=disable", "postgres://host/db?user=u&password=xxxxx&sslmode=disable"},
		{"postgres://u:s3cret@host/db?sslpassword=s3cret", "postgres://u:xxxxx@host/db?sslpassword=xxxxx"},
		{"postgres://u:s3cret@h1:5432,h2:5432/db", "postgres://u:xxxxx@h1:5432,h2:5432/db"},
		{"postgres://u:s3cret@[bad/db?password=s3cret", "postgres://u:xxxxx@[bad/db?password=xxxxx"},
		{"host=localhost user=u password=s3cret dbname=app", "host=localhost user=u password=xxxxx dbname=app"},
		{"host=localhost password = 's3 cret\\'x' dbname=app", "host=localhost password=xxxxx dbname=app"},
		{"host=localhost sslpassword=s3cret", "host=localhost sslpassword=xxxxx"},
		{"", ""},
		// pgx takes '#' and '?' in a password, which net/url refuses.
		{"postgres://postgres:pa#s3cret@127.0.0.1:5432/test?sslmode=disable", "postgres://postgres:xxxxx@127.0.0.1:5432/test?sslmode=disable"},
		{"postgres://postgres:pa?s3cret@127.0.0.1:5432/test?sslmode=disable", "postgres://postgres:xxxxx@127.0.0.1:5432/test?sslmode=disable"},
		// Keyword/value, whatever the password holds.
		{"host=127.0.0.1 user=postgres dbname=test password=ab://s3cret", "host=127.0.0.1 user=postgres dbname=test password=xxxxx"},
		// An unquoted value escapes a space with a backslash, and pgx
		// reads '#' in a URL's query as part of the value.
		{`host=localhost password=ab\ s3cret user=u`, "host=localhost password=xxxxx user=u"},
		{"postgres://127.0.0.1/db?user=u&password=ab#s3cret", "postgres://127.0.0.1/db?user=u&password=xxxxx"},
		// Another scheme's URL, given by mistake: pgx reads it as
		// keyword/value and fails, but its user info is a password all
		// the same.
		{"mysql://u:s3cret@h/db", "mysql://u:xxxxx@h/db"},
		{"postgresql+psycopg://u:s3cret@h:5432/db", "postgresql+psycopg://u:xxxxx@h:5432/db"},
		{"https://u:s3cret@h/p.wasm", "https://u:xxxxx@h/p.wasm"},
		// A URL pgx does not take for one: a space before it (an env
		// file's DATABASE_URL= postgres://...), a JDBC URL, one slash.
		{" postgres://u:s3cret@h/db", " postgres://u:xxxxx@h/db"},
		{"jdbc:postgresql://u:s3cret@h/db", "jdbc:postgresql://u:xxxxx@h/db"},
		{"postgres:/u:s3cret@h/db", "postgres:/u:xxxxx@h/db"},
		// Other slips of the same kind: no colon, no slashes, no scheme,
		// other blanks before it.
		{"postgres//u:s3cret@h/db", "postgres//u:xxxxx@h/db"},
		{"postgres:u:s3cret@h/db", "postgres:u:xxxxx@h/db"},
		{"u:s3cret@h/db", "u:xxxxx@h/db"},
		{"\vpostgres://u:s3cret@h/db", "\vpostgres://u:xxxxx@h/db"},
		{"\u00a0postgres://u:s3cret@h/db", "\u00a0postgres://u:xxxxx@h/db"},
	}
	for _, c := range cases {
		got := RedactURL(c.in)
		if got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "cret") {
			t.Errorf("RedactURL(%q) leaks the password: %q", c.in, got)
		}
	}
}

func FuzzRedactURL(f *testing.F) {
	f.Add("postgres://user:s3cret@host/db")
	f.Add("host=h password='a b' user=u")
	f.Add("postgres://u:pw@[::1/db?password=pw")
	f.Add("postgres://postgres:pa#pw@127.0.0.1:5432/test")
	f.Add("host=h password=ab://pw")
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactURL(s) // must not panic
		// Whatever password pgx would connect with is not shown (short
		// ones may occur in the rest of the string by chance).
		if cfg, err := pgconn.ParseConfig(s); err == nil && len(cfg.Password) >= 4 && out != unshown && strings.Contains(out, cfg.Password) {
			t.Fatalf("RedactURL(%q) = %q shows the password %q", s, out, cfg.Password)
		}
	})
}

// CheckURL's (and so Open's) error for a malformed connection string never
// shows its password, in any spelling pgx accepts: libpq's syntax allows
// spaces around '=', which pgx's own masking does not expect.
func TestCheckURL_neverShowsPassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"host=127.0.0.1 password = s3cret port=x",
		"host=127.0.0.1 password= s3cret port=x",
		"host=127.0.0.1 password =s3cret port=x",
		`host=127.0.0.1 password='ab\' s3cret' port=x`,
		`host=127.0.0.1 password=ab\ s3cret port=x`,
		"postgres://u:s3cret@127.0.0.1:x/db",
		"postgres://u@127.0.0.1/db?password=s3cret&sslmode=bogus",
	} {
		err := CheckURL(u)
		if err == nil {
			t.Fatalf("CheckURL(%q) accepted it", u)
		}
		if strings.Contains(err.Error(), "cret") {
			t.Errorf("CheckURL(%q) shows the password: %v", u, err)
		}
		if !strings.Contains(err.Error(), "port") && !strings.Contains(err.Error(), "sslmode") {
			t.Errorf("CheckURL(%q) no longer says what is wrong: %v", u, err)
		}
	}
}
