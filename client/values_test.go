package client

import (
	"math"
	"reflect"
	"testing"
	"time"
)

// What another client reads back of each kind of value, through this
// project's server, is what the package doc's Values section says.
func TestValues_asAnotherClientReadsThem(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	a := dial(t, url, testOptions(t))
	b := dial(t, url, testOptions(t))
	ctx := ctxT(t)
	type point struct {
		X int
		Y string `msgpack:"why"`
	}
	cases := []struct {
		key       string
		put, read any // read nil: the key is deleted
	}{
		{"int", 5, int64(5)},
		{"int8", int8(-3), int64(-3)},
		{"uint64", uint64(math.MaxUint64), int64(-1)},
		{"float32", float32(1.5), 1.5},
		{"float64", 5.0, 5.0},
		{"bytes", []byte{0, 255}, []byte{0, 255}},
		{"struct", point{1, "z"}, map[string]any{"X": int64(1), "why": "z"}},
		{"intkeys", map[int]string{1: "a"}, map[string]any{"1": "a"}},
		{"nested", map[string]any{"a": []any{int64(1), 2.5, nil, []byte("x"), time.Unix(1, 0)}},
			map[string]any{"a": []any{int64(1), 2.5, nil, []byte("x"), nil}}},
		{"notutf8", "a\xffb", ""},
		{"notutf8key", map[string]any{"\xff": 1}, map[string]any{"": int64(1)}},
		{"time", time.Unix(1, 0), nil},
		{"nil", nil, nil},
	}
	for _, c := range cases {
		if err := a.Put(ctx, "values", c.key, "before"); err != nil {
			t.Fatal(err)
		}
		if err := a.Put(ctx, "values", c.key, c.put); err != nil {
			t.Fatalf("put %s: %v", c.key, err)
		}
	}
	s, err := b.Subscribe(ctx, "values", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := map[string]any{}
	for _, r := range s.Initial {
		got[r.Key] = r.Value
	}
	for _, c := range cases {
		v, ok := got[c.key]
		switch {
		case c.read == nil && ok:
			t.Errorf("%s: %T %#v read back as %#v; want the key deleted", c.key, c.put, c.put, v)
		case c.read != nil && !reflect.DeepEqual(v, c.read):
			t.Errorf("%s: %T %#v read back as %#v; want %#v", c.key, c.put, c.put, v, c.read)
		}
	}
}

// This project's server keeps the client's timestamps: a write stamped
// before the key's record is acknowledged and changes nothing, until the
// writer's clock has seen the record's timestamp (here from a map event).
func TestPut_stampedBeforeTheRecordIsAcknowledgedAndChangesNothing(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	behind := dial(t, url, testOptions(t))
	other := dial(t, url, testOptions(t))
	reader := dial(t, url, testOptions(t))
	behind.hlc.mu.Lock()
	behind.hlc.wall = func() uint64 { return uint64(time.Now().Add(-time.Minute).UnixMilli()) }
	behind.hlc.mu.Unlock()
	ctx := ctxT(t)
	read := func() any {
		t.Helper()
		s, err := reader.Subscribe(ctx, "skew", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, r := range s.Initial {
			if r.Key == "k" {
				return r.Value
			}
		}
		return nil
	}

	if err := other.Put(ctx, "skew", "k", "first"); err != nil {
		t.Fatal(err)
	}
	if err := behind.Put(ctx, "skew", "k", "second"); err != nil {
		t.Fatalf("the write stamped before the record: %v; want it acknowledged", err)
	}
	if v := read(); v != "first" {
		t.Fatalf("after a write stamped before the record: %#v; want %q, unchanged", v, "first")
	}

	sub, err := behind.Subscribe(ctx, "skew", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := other.Put(ctx, "skew", "k", "third"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Updates: // its timestamp advances behind's clock
	case <-ctx.Done():
		t.Fatal("no event for the other client's write")
	}
	if err := behind.Put(ctx, "skew", "k", "fourth"); err != nil {
		t.Fatal(err)
	}
	if v := read(); v != "fourth" {
		t.Fatalf("after the writer saw the record's timestamp: %#v; want %q", v, "fourth")
	}
}
