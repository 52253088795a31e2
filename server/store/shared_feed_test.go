package store

import (
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/record"
)

// writeElsewhere writes a record as another server's commit would, with its
// notification held back (still on its way) until notify is called.
func writeElsewhere(t *testing.T, url string, f *fixture, m, k string, rv record.RecordValue) (notify func()) {
	t.Helper()
	enc, err := record.Encode(nil, &rv)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, url, `INSERT INTO topgun_maps (map_name, key, value, expiration_time, is_backup, created_at, updated_at) VALUES ($1, $2, $3, 0, false, 1, 1)
ON CONFLICT (map_name, key, is_backup) DO UPDATE SET value = EXCLUDED.value`, m, k, enc)
	return func() {
		pgtest.Exec(t, url, `SELECT pg_notify($1, json_build_object('o', 'elsewhere', 'm', $2::text, 'k', json_build_array($3::text))::text)`,
			f.be.(*postgres.Backend).Channel(), m, k)
	}
}

// collect gathers B's feed for d.
func collect(sub *Subscription, d time.Duration) []Change {
	var out []Change
	deadline := time.After(d)
	for {
		select {
		case c := <-sub.C():
			out = append(out, c.Changes...)
		case <-deadline:
			return out
		}
	}
}

// Another server's newer LWW write, read by this store's merge of an older
// write (a no-op), reaches the feed: it is installed in the index with the
// merge, so its notification, arriving later, finds the index equal and
// would announce nothing.
func TestShared_LWWReadByNoOpMergeReachesFeed(t *testing.T) {
	_, b, url := sharedPairURL(t, nil)
	sub := b.s.Subscribe()
	defer sub.Close()
	notify := writeElsewhere(t, url, b, "m", "k", record.NewLWW(record.StringValue("fromA"), ts(t0+10, 0, "c1")))
	if r := b.apply(put("m", "k", "older", ts(t0, 0, "c2"))); r[0].Changed {
		t.Fatal("the older write was applied")
	}
	notify()
	for _, c := range collect(sub, time.Second) {
		if c.Key == "k" && c.Kind == ChangePut && c.Record.LWW.Value.Text() == "fromA" {
			return
		}
	}
	t.Fatal("A's write never reached B's change feed")
}

// The same for an OR entry another server added, read by this store's own
// add to the key: both adds are announced.
func TestShared_ORAddReadByOwnAddReachesFeed(t *testing.T) {
	_, b, url := sharedPairURL(t, nil)
	sub := b.s.Subscribe()
	defer sub.Close()
	notify := writeElsewhere(t, url, b, "o", "k", record.NewORMap([]record.ORMapEntry{{Value: record.StringValue("a"), Tag: "a", Timestamp: ts(t0, 0, "c1")}}, nil))
	if r := b.apply(Op{Map: "o", Key: "k", Kind: OpORAdd, Value: record.StringValue("b"), Timestamp: ts(t0, 1, "c2"), Tag: "b"}); !r[0].Changed {
		t.Fatal("B's add not applied")
	}
	notify()
	for _, c := range collect(sub, time.Second) {
		if c.Kind == ChangeORAdd && c.Tag == "a" {
			return
		}
	}
	t.Fatal("A's OR add (tag a) never reached B's change feed")
}

// B collects a tombstone A's clients hold; A re-reads the deletion and its
// own collector then finds nothing to collect: it still tells its clients
// to prune.
func TestShared_pruneReachesOtherServersClients(t *testing.T) {
	a, b := sharedPair(t, func(o *Options) { o.TombstoneTTL = time.Hour })
	a.apply(Op{Map: "m", Key: "k", Kind: OpRemove, Timestamp: ts(t0, 0, "c1")})
	until(t, "B indexed the tombstone", func() bool { return a.s.Root("m", KindLWW) == b.s.Root("m", KindLWW) })
	a.wall.Add(2 * time.Hour.Milliseconds())
	if n, err := b.s.CollectTombstones(t.Context()); err != nil || n != 1 {
		t.Fatalf("B's GC: %d %v", n, err)
	}
	until(t, "A re-read the deletion", func() bool { return a.s.Root("m", KindLWW) == 0 })
	sub := a.s.Subscribe()
	defer sub.Close()
	if _, err := a.s.CollectTombstones(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-sub.C():
		if c.PruneBefore == nil {
			t.Fatalf("A's feed: %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A's clients never get GC_PRUNE for the tombstone B collected")
	}
}
