package postgres

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
)

// A notification's payload is whatever any session of the database sends
// on the channel: reading it never panics, and what it names is a valid
// map and valid keys. The notices a backend writes name, to another
// backend, every primary record of the batch (by key, or its map whole).
func FuzzReadNotice(f *testing.F) {
	f.Add(`{"o":"other","m":"users","k":["a","b"]}`, "users\x00a\x00b")
	f.Add(`{"o":"other","m":"users","b":["PCY+"]}`, "m\x00<&>\x00\u2028")
	f.Add(`{"o":"other","a":true}`, "")
	f.Add(`{"o":"self","m":"users"}`, "z\x00"+strings.Repeat("y", maxNotice))
	f.Add(`{"o":1}`, "\x00\x00")
	f.Add(`{"o":"other","m":"a\u0000b","k":["\u0000"]}`, "m\x00\xff")
	f.Fuzz(func(t *testing.T, payload, batch string) {
		self := &Backend{origin: "self", log: hclog.NewNullLogger()}
		if c, ok := self.readNotice("ch", payload); ok {
			checkChanged(t, c)
		}

		// batch: a map name, then its keys, NUL-separated.
		parts := strings.Split(batch, "\x00")
		m := parts[0]
		if abi.ValidateMapName(m) != nil {
			return
		}
		var ids []recordID
		for _, k := range parts[1:] {
			if abi.ValidateKey(k) == nil {
				ids = append(ids, recordID{mapName: m, key: k})
			}
		}
		slices.SortFunc(ids, compareID)
		ids = slices.Compact(ids)
		other := &Backend{origin: "other", log: hclog.NewNullLogger()}
		named := map[string]bool{}
		whole := len(ids) == 0
		for _, p := range other.notices(ids) {
			if len(p) > maxNotice {
				t.Fatalf("a notice of %d bytes", len(p))
			}
			if _, ok := other.readNotice("ch", p); ok {
				t.Fatalf("the backend took its own notice %q", p)
			}
			c, ok := self.readNotice("ch", p)
			if !ok {
				t.Fatalf("notice %q ignored", p)
			}
			checkChanged(t, c)
			switch {
			case c.All, c.Map == m && c.Keys == nil:
				whole = true
			case c.Map == m:
				for _, k := range c.Keys {
					named[k] = true
				}
			default:
				t.Fatalf("notice %q names map %q, not %q", p, c.Map, m)
			}
		}
		if whole {
			return
		}
		for _, id := range ids {
			if !named[id.key] {
				t.Fatalf("key %q of map %q not named by any notice", id.key, m)
			}
		}
	})
}

func checkChanged(t *testing.T, c abi.Changed) {
	t.Helper()
	if c.All {
		return
	}
	if err := abi.ValidateMapName(c.Map); err != nil {
		t.Fatalf("names map %q: %v", c.Map, err)
	}
	for _, k := range c.Keys {
		if err := abi.ValidateKey(k); err != nil {
			t.Fatalf("names key %q: %v", k, err)
		}
	}
}
