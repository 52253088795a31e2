package merkle

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"testing"
	"unicode/utf16"

	"github.com/topgun-go/topgun/server/record"
)

// ---------------------------------------------------------------------------
// A deliberately naive model of the TypeScript client, written from the
// reference description (§2.2–2.4) and independent of the package code: FNV
// over utf16.Encode, nodes in maps, every hash recomputed from scratch on the
// way up, nothing pruned.

func naiveFNV(s string) uint32 {
	h := uint32(2166136261)
	for _, u := range utf16.Encode([]rune(s)) {
		h ^= uint32(u)
		h *= 16777619
	}
	return h
}

func naiveMix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func naiveCombine(hs []uint32) uint32 {
	var s uint32
	for _, h := range hs {
		s += naiveMix(h)
	}
	return s
}

type modelNode struct {
	hash     uint32
	children map[string]*modelNode
	entries  map[string]uint32 // leaf level only
}

type clientTree struct{ root *modelNode }

func newClientTree() *clientTree {
	return &clientTree{root: &modelNode{children: map[string]*modelNode{}}}
}

func (m *clientTree) path(key string) string { return fmt.Sprintf("%08x", naiveFNV(key)) }

func (m *clientTree) update(key string, item uint32) { m.upd(m.root, key, item, m.path(key), 0) }

func (m *clientTree) upd(n *modelNode, key string, item uint32, p string, level int) {
	if level >= 3 {
		if n.entries == nil {
			n.entries = map[string]uint32{}
		}
		n.entries[key] = item
		n.hash = naiveCombine(mapValues(n.entries))
		return
	}
	c := p[level : level+1]
	if n.children == nil {
		n.children = map[string]*modelNode{}
	}
	if n.children[c] == nil {
		n.children[c] = &modelNode{}
	}
	m.upd(n.children[c], key, item, p, level+1)
	n.hash = naiveCombine(childHashes(n))
}

func (m *clientTree) remove(key string) { m.rem(m.root, key, m.path(key), 0) }

func (m *clientTree) rem(n *modelNode, key string, p string, level int) {
	if level >= 3 {
		delete(n.entries, key)
		n.hash = naiveCombine(mapValues(n.entries))
		return
	}
	if ch := n.children[p[level:level+1]]; ch != nil {
		m.rem(ch, key, p, level+1)
	}
	n.hash = naiveCombine(childHashes(n))
}

func (m *clientTree) node(path string) *modelNode {
	n := m.root
	for i := 0; i < len(path); i++ {
		if n.children == nil || n.children[path[i:i+1]] == nil {
			return nil
		}
		n = n.children[path[i:i+1]]
	}
	return n
}

func (m *clientTree) buckets(path string) map[string]uint32 {
	out := map[string]uint32{}
	if n := m.node(path); n != nil {
		for c, ch := range n.children {
			out[c] = ch.hash
		}
	}
	return out
}

func (m *clientTree) keys(path string) []string {
	var out []string
	if n := m.node(path); n != nil {
		for k := range n.entries {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func mapValues(m map[string]uint32) []uint32 {
	var out []uint32
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func childHashes(n *modelNode) []uint32 {
	var out []uint32
	for _, ch := range n.children {
		out = append(out, ch.hash)
	}
	return out
}

// The client's item hashes, restated naively (values restricted to strings
// and small integers, whose stringifyValue is the plain text).
func naiveLWWItem(key string, ts record.Timestamp) uint32 {
	return naiveFNV(fmt.Sprintf("%s:%d:%d:%s", key, ts.Millis, ts.Counter, ts.NodeID))
}

func naiveORItem(key string, recs map[string]record.ORMapEntry) uint32 {
	var tags []string
	for tag := range recs {
		tags = append(tags, tag)
	}
	sort.Strings(tags) // ASCII tags: byte order is the client's order
	s := "key:" + key
	for _, tag := range tags {
		r := recs[tag]
		var v string
		if r.Value.Type() == record.TypeInt {
			v = strconv.FormatInt(r.Value.Int(), 10)
		} else {
			v = r.Value.Text()
		}
		s += fmt.Sprintf("|%s:%s:%d:%d:%s", tag, v, r.Timestamp.Millis, r.Timestamp.Counter, r.Timestamp.NodeID)
	}
	return naiveFNV(s)
}

// compareWithModel checks root, every bucket list, every node hash and every
// leaf of tree against the client model.
func compareWithModel(t *testing.T, tree *Tree, model *clientTree) {
	t.Helper()
	if tree.Root() != model.root.hash {
		t.Fatalf("root %d, client %d", tree.Root(), model.root.hash)
	}
	var walk func(path string, n *modelNode)
	walk = func(path string, n *modelNode) {
		if len(path) < Depth {
			compareBuckets(t, fmt.Sprintf("path %q", path), tree.Buckets(path), model.buckets(path))
			for c, ch := range n.children {
				walk(path+c, ch)
			}
		} else if got, want := tree.LeafKeys(path), model.keys(path); !slices.Equal(got, want) {
			t.Fatalf("leaf %q keys %q, client %q", path, got, want)
		}
		got, present := tree.Hash(path)
		if got != n.hash {
			t.Fatalf("node %q hash %d, client %d", path, got, n.hash)
		}
		if present != (len(path) == 0 && tree.Len() > 0 || len(path) > 0 && subtreeHasKeys(n)) {
			t.Fatalf("node %q presence %v does not match the client's keys", path, present)
		}
	}
	walk("", model.root)
}

func subtreeHasKeys(n *modelNode) bool {
	if len(n.entries) > 0 {
		return true
	}
	for _, ch := range n.children {
		if subtreeHasKeys(ch) {
			return true
		}
	}
	return false
}

// TestTree_matchesClientModel_LWW replays random LWW histories (puts,
// removes that keep a tombstone, tombstone garbage collection) on the tree,
// fed with LWWItemHash of the stored records, and on the naive client model,
// fed with the client's own formula, and compares everything.
func TestTree_matchesClientModel_LWW(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 11))
	for round := 0; round < 20; round++ {
		tree, model := New(), newClientTree()
		stored := map[string]record.RecordValue{} // what the server stores
		var clock uint64 = 1700000000000
		keys := make([]string, 50+r.IntN(400))
		for i := range keys {
			keys[i] = genKey(r) + "/" + strconv.Itoa(i)
		}
		ops := 200 + r.IntN(2000)
		for i := 0; i < ops; i++ {
			k := pick(r, keys)
			clock += uint64(r.IntN(3))
			ts := record.Timestamp{Millis: clock, Counter: uint32(r.IntN(3)), NodeID: pick(r, []string{"a", "b", "ключ"})}
			switch x := r.IntN(10); {
			case x < 6: // put
				stored[k] = record.NewLWW(genValue(r, 0), ts)
			case x < 9: // remove: an LWW tombstone, still in the trie
				stored[k] = record.NewLWW(record.NullValue(), ts)
			default: // garbage-collect the key
				if _, ok := stored[k]; !ok {
					continue
				}
				delete(stored, k)
				if !tree.Remove(k) {
					t.Fatalf("Remove(%q) of a present key returned false", k)
				}
				model.remove(k)
				continue
			}
			rv := stored[k]
			h, ok := ItemHash(k, &rv)
			if !ok {
				t.Fatal("an LWW record must have a leaf")
			}
			tree.Update(k, h)
			model.update(k, naiveLWWItem(k, ts))
		}
		if tree.Len() != len(stored) {
			t.Fatalf("Len %d, want %d", tree.Len(), len(stored))
		}
		compareWithModel(t, tree, model)
	}
}

// TestTree_matchesClientModel_ORMap does the same for OR-Maps: adds, removes
// of tags (the key leaves the trie when no record is left) and re-adds.
func TestTree_matchesClientModel_ORMap(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 12))
	for round := 0; round < 20; round++ {
		tree, model := New(), newClientTree()
		server := map[string]*record.ORMap{}
		client := map[string]map[string]record.ORMapEntry{}
		var clock uint64 = 1700000000000
		keys := make([]string, 20+r.IntN(200))
		for i := range keys {
			keys[i] = genKey(r) + "#" + strconv.Itoa(i)
		}
		for i := 0; i < 200+r.IntN(1500); i++ {
			k := pick(r, keys)
			m := server[k]
			if m == nil {
				m = &record.ORMap{}
				server[k] = m
				client[k] = map[string]record.ORMapEntry{}
			}
			if len(m.Records) > 0 && r.IntN(3) == 0 { // remove one tag
				j := r.IntN(len(m.Records))
				tag := m.Records[j].Tag
				m.Records = slices.Delete(m.Records, j, j+1)
				m.Tombstones = append(m.Tombstones, tag)
				delete(client[k], tag)
			} else { // add
				clock++
				ts := record.Timestamp{Millis: clock, Counter: uint32(r.IntN(2)), NodeID: "srv"}
				v := record.StringValue(genKey(r))
				if r.IntN(2) == 0 {
					v = record.IntValue(int64(r.IntN(1000)) - 500)
				}
				e := record.ORMapEntry{Value: v, Tag: ts.String(), Timestamp: ts}
				m.Records = append(m.Records, e)
				client[k][e.Tag] = e
			}
			rv := record.NewORMap(m.Records, m.Tombstones)
			if h, ok := ItemHash(k, &rv); ok {
				tree.Update(k, h)
			} else {
				tree.Remove(k)
			}
			if len(client[k]) > 0 {
				model.update(k, naiveORItem(k, client[k]))
			} else {
				model.remove(k)
			}
		}
		compareWithModel(t, tree, model)
	}
}

func TestTree_basics(t *testing.T) {
	t.Parallel()
	tree := New()
	if tree.Root() != 0 || tree.Len() != 0 || tree.Buckets("") != nil {
		t.Fatal("an empty tree must have root 0 and no buckets")
	}
	if _, ok := tree.Hash(""); ok {
		t.Fatal("an empty root reports keys")
	}
	const h = 0xdeadbeef
	tree.Update("k", h)
	if want := Mix(Mix(Mix(Mix(h)))); tree.Root() != want {
		t.Fatalf("one key: root %d, want mix⁴(h) = %d", tree.Root(), want)
	}
	p := Path("k")
	if b := tree.Buckets(""); len(b) != 1 || b[p[:1]] != Mix(Mix(Mix(h))) {
		t.Fatalf("Buckets(\"\") = %v", b)
	}
	if b := tree.Buckets(p[:2]); len(b) != 1 || b[p[2:3]] != Mix(h) {
		t.Fatalf("Buckets(%q) = %v", p[:2], b)
	}
	if keys := tree.LeafKeys(p[:3]); !slices.Equal(keys, []string{"k"}) {
		t.Fatalf("LeafKeys = %v", keys)
	}
	if got, ok := tree.Get("k"); !ok || got != h {
		t.Fatalf("Get = %d, %v", got, ok)
	}
	for _, bad := range []string{p[:3], p[:4], "g", "A", p[:1] + "X", "0000"} {
		if b := tree.Buckets(bad); b != nil {
			t.Errorf("Buckets(%q) = %v, want nil", bad, b)
		}
	}
	for _, bad := range []string{"", p[:2], p[:4], "zzz"} {
		if k := tree.LeafKeys(bad); k != nil {
			t.Errorf("LeafKeys(%q) = %v, want nil", bad, k)
		}
	}
	before := tree.Root()
	tree.Update("k", h) // same hash: nothing changes
	if tree.Root() != before || tree.Len() != 1 {
		t.Fatal("re-setting the same hash changed the tree")
	}
	if tree.Remove("missing") || tree.Len() != 1 {
		t.Fatal("removing a missing key reported success")
	}
	if !tree.Remove("k") || tree.Root() != 0 || tree.Len() != 0 || tree.Buckets("") != nil {
		t.Fatalf("after removing the last key: %v, buckets %v", tree, tree.Buckets(""))
	}
	for _, n1 := range tree.kids {
		if n1 != nil {
			t.Fatal("an emptied node was kept")
		}
	}
}

func TestTree_rangeAndReset(t *testing.T) {
	t.Parallel()
	tree := New()
	want := map[string]uint32{}
	for i := 0; i < 1000; i++ {
		k := "key-" + strconv.Itoa(i)
		want[k] = uint32(i * 7919)
		tree.Update(k, want[k])
	}
	got := map[string]uint32{}
	lastPath := ""
	tree.Range(func(k string, h uint32) bool {
		if p := Path(k)[:Depth]; p < lastPath {
			t.Fatalf("Range out of path order at %q", k)
		} else {
			lastPath = p
		}
		got[k] = h
		return true
	})
	if len(got) != len(want) {
		t.Fatalf("Range visited %d keys, want %d", len(got), len(want))
	}
	for k, h := range want {
		if got[k] != h {
			t.Fatalf("Range gave %q = %d, want %d", k, got[k], h)
		}
	}
	n := 0
	tree.Range(func(string, uint32) bool { n++; return n < 5 })
	if n != 5 {
		t.Fatalf("Range did not stop: %d calls", n)
	}
	tree.Reset()
	if tree.Len() != 0 || tree.Root() != 0 {
		t.Fatal("Reset left keys")
	}
}

// TestTree_shrinksLeaves: removing most keys gives memory back.
func TestTree_shrinksLeaves(t *testing.T) {
	t.Parallel()
	tree := New()
	for i := 0; i < 200000; i++ {
		tree.Update("k"+strconv.Itoa(i), uint32(i))
	}
	for i := 0; i < 199000; i++ {
		tree.Remove("k" + strconv.Itoa(i))
	}
	capTotal := 0
	tree.forEachLeaf(func(l *leaf) { capTotal += cap(l.keys) })
	if capTotal > 4*tree.Len()+16*4096 {
		t.Fatalf("%d keys hold capacity for %d", tree.Len(), capTotal)
	}
}

func (t *Tree) forEachLeaf(fn func(*leaf)) {
	for _, n1 := range t.kids {
		if n1 == nil {
			continue
		}
		for _, n2 := range n1.kids {
			if n2 == nil {
				continue
			}
			for _, lf := range n2.kids {
				if lf != nil {
					fn(lf)
				}
			}
		}
	}
}

func TestItemHash_kinds(t *testing.T) {
	t.Parallel()
	ts := record.Timestamp{Millis: 100, Counter: 0, NodeID: "test"}
	lww := record.NewLWW(record.StringValue("v"), ts)
	if h, ok := ItemHash("key1", &lww); !ok || h != 3988528110 { // fnv1a("key1:100:0:test"), §2.2
		t.Fatalf("LWW ItemHash = %d, %v", h, ok)
	}
	tomb := record.NewLWW(record.NullValue(), ts)
	if h, _ := ItemHash("key1", &tomb); h != 3988528110 {
		t.Fatal("a tombstone must hash by its timestamp like any LWW record")
	}
	empty := record.NewORMap(nil, []string{"t"})
	if _, ok := ItemHash("k", &empty); ok {
		t.Fatal("an OR-Map key without records has no leaf on the client")
	}
	legacy := record.RecordValue{Kind: record.KindORTombstones, ORMap: record.ORMap{Tombstones: []string{"t"}}}
	if _, ok := ItemHash("k", &legacy); ok {
		t.Fatal("orTombstones has no leaf")
	}
	or := record.NewORMap([]record.ORMapEntry{
		{Value: record.StringValue("b"), Tag: "t2", Timestamp: ts},
		{Value: record.IntValue(7), Tag: "t1", Timestamp: record.Timestamp{Millis: 1, Counter: 2, NodeID: "n"}, TTLMs: 5000},
	}, []string{"gone"})
	want := FNV1a("key:k|t1:7:1:2:n:ttl=5000|t2:b:100:0:test")
	if h, ok := ItemHash("k", &or); !ok || h != want {
		t.Fatalf("OR ItemHash = %d, want %d", h, want)
	}
}

func TestTopGunLeafHash(t *testing.T) {
	t.Parallel()
	ts := record.Timestamp{Millis: 100, Counter: 0, NodeID: "test"}
	lww := record.NewLWW(record.NullValue(), ts)
	if h, ok := TopGunLeafHash("key1", &lww); !ok || h != 3988528110 {
		t.Fatalf("LWW = %d", h)
	}
	or := record.NewORMap([]record.ORMapEntry{{Tag: "b"}, {Tag: "a"}}, []string{"z", "y"})
	if h, ok := TopGunLeafHash("k", &or); !ok || h != FNV1a("key:k|a|b#y|z") {
		t.Fatalf("OR = %d", h)
	}
	none := record.NewORMap(nil, nil)
	if h, ok := TopGunLeafHash("k", &none); !ok || h != FNV1a("key:k|#") {
		t.Fatalf("empty OR = %d, %v", h, ok)
	}
	legacy := record.RecordValue{Kind: record.KindORTombstones}
	if _, ok := TopGunLeafHash("k", &legacy); ok {
		t.Fatal("orTombstones has no leaf on TopGun's server")
	}
}
