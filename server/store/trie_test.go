package store

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"

	"github.com/topgun-go/topgun/server/merkle"
)

// TestTrie_matchesClientTree checks the store's trie against merkle.Tree,
// which is tested against a model of TopGun's client tree: same root, same
// buckets at every internal path, same keys at every leaf, over random
// inserts, updates and removals.
func TestTrie_matchesClientTree(t *testing.T) {
	seed := int64(rand.Uint32())
	rng := rand.New(rand.NewSource(seed))
	tr := newTrie[uint32]()
	ref := merkle.New()
	keys := make([]string, 3000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d-ключ-%c", i, rune(0x1F600+i%50))
	}
	for step := 0; step < 20000; step++ {
		k := keys[rng.Intn(len(keys))]
		old, had := tr.get(k)
		if rng.Intn(4) == 0 {
			if had {
				tr.remove(k, old)
			}
			ref.Remove(k)
		} else {
			h := rng.Uint32()
			tr.set(k, h, had, old, h)
			ref.Update(k, h)
		}
	}
	if tr.root() != ref.Root() {
		t.Fatalf("seed %d: root %d, client tree %d", seed, tr.root(), ref.Root())
	}
	paths := []string{""}
	for i := 0; i < 16; i++ {
		p1 := fmt.Sprintf("%x", i)
		paths = append(paths, p1)
		for j := 0; j < 16; j++ {
			paths = append(paths, p1+fmt.Sprintf("%x", j))
		}
	}
	for _, p := range paths {
		got, ok := tr.buckets(p)
		want := ref.Buckets(p)
		if !ok || len(got) != len(want) {
			t.Fatalf("seed %d: buckets(%q) = %v, client tree %v", seed, p, got, want)
		}
		for c, h := range want {
			if got[c] != h {
				t.Fatalf("seed %d: bucket %q%s = %d, client tree %d", seed, p, c, got[c], h)
			}
		}
	}
	for i := 0; i < 4096; i++ {
		p := fmt.Sprintf("%03x", i)
		got, _ := tr.leafKeys(p)
		sort.Strings(got)
		want := ref.LeafKeys(p)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: leaf %s keys %v, client tree %v", seed, p, got, want)
		}
	}
	if _, ok := tr.buckets("xyz"); ok {
		t.Fatalf("non-hex path accepted")
	}
	if _, ok := tr.leafKeys("g00"); ok {
		t.Fatalf("non-hex leaf path accepted")
	}
}
