package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// harness opens each case's backend on a fresh schema; Reopen closes the
// backend and opens the same schema again, and OpenShared opens another
// backend on it, as another server sharing the table.
func harness() abitest.Harness {
	var urls sync.Map // abi.Backend -> url
	open := func(t abitest.TB, url string) abi.Backend {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b, err := Open(ctx, url, testOptions(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		urls.Store(abi.Backend(b), url)
		return b
	}
	return abitest.Harness{
		Open: func(t abitest.TB) abi.Backend {
			return open(t, pgtest.FreshSchema(t))
		},
		Reopen: func(t abitest.TB, b abi.Backend) abi.Backend {
			t.Helper()
			url, ok := urls.Load(b)
			if !ok {
				t.Fatalf("Reopen of a backend the harness did not open")
			}
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, url.(string))
		},
		OpenShared: func(t abitest.TB, b abi.Backend) abi.Backend {
			t.Helper()
			url, ok := urls.Load(b)
			if !ok {
				t.Fatalf("OpenShared of a backend the harness did not open")
			}
			return open(t, url.(string))
		},
	}
}

func TestConformance(t *testing.T) {
	pgtest.URL(t) // skip or fail once, up front
	abitest.RunConformance(t, harness())
}
