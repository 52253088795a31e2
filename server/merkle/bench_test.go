package merkle

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"

	"github.com/topgun-go/topgun/server/record"
)

const benchKeys = 1 << 20

var benchData struct {
	keys   []string
	hashes []uint32
}

func benchKeySet() ([]string, []uint32) {
	if benchData.keys == nil {
		r := rand.New(rand.NewPCG(1, 1))
		benchData.keys = make([]string, benchKeys)
		benchData.hashes = make([]uint32, benchKeys)
		for i := range benchData.keys {
			benchData.keys[i] = "user:" + strconv.Itoa(i) + ":profile"
			benchData.hashes[i] = r.Uint32()
		}
	}
	return benchData.keys, benchData.hashes
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkTree_Build1M inserts 2^20 keys into an empty tree and reports the
// time and the heap the tree holds per key (key bytes excluded: the tree
// shares them with the caller). The map baseline is a bare
// map[string]uint32 of the same keys, the least any key → hash index costs.
//
//	go test ./server/merkle -run '^$' -bench Build1M -benchtime 3x
func BenchmarkTree_Build1M(b *testing.B) {
	keys, hashes := benchKeySet()
	b.Run("tree", func(b *testing.B) {
		var bytesPerKey float64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			before := heapInUse()
			b.StartTimer()
			tree := New()
			for j, k := range keys {
				tree.Update(k, hashes[j])
			}
			b.StopTimer()
			bytesPerKey = float64(heapInUse()-before) / benchKeys
			runtime.KeepAlive(tree)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchKeys, "ns/key")
		b.ReportMetric(bytesPerKey, "bytes/key")
	})
	b.Run("map-baseline", func(b *testing.B) {
		var bytesPerKey float64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			before := heapInUse()
			b.StartTimer()
			m := make(map[string]uint32)
			for j, k := range keys {
				m[k] = hashes[j]
			}
			b.StopTimer()
			bytesPerKey = float64(heapInUse()-before) / benchKeys
			runtime.KeepAlive(m)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchKeys, "ns/key")
		b.ReportMetric(bytesPerKey, "bytes/key")
	})
}

// BenchmarkTree_Update changes the item hash of existing keys in a tree of
// 2^20 keys (the steady state of a busy map); the baseline updates a bare
// map[string]uint32 of the same keys.
func BenchmarkTree_Update(b *testing.B) {
	keys, hashes := benchKeySet()
	b.Run("tree", func(b *testing.B) {
		tree := New()
		for j, k := range keys {
			tree.Update(k, hashes[j])
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := (i * 7919) & (benchKeys - 1)
			tree.Update(keys[j], hashes[j]+uint32(i)+1)
		}
	})
	b.Run("map-baseline", func(b *testing.B) {
		m := make(map[string]uint32, benchKeys)
		for j, k := range keys {
			m[k] = hashes[j]
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := (i * 7919) & (benchKeys - 1)
			m[keys[j]] = hashes[j] + uint32(i) + 1
		}
	})
}

// BenchmarkTree_RemoveInsert removes a key and inserts it back, in a tree of
// 2^20 keys.
func BenchmarkTree_RemoveInsert(b *testing.B) {
	keys, hashes := benchKeySet()
	tree := New()
	for j, k := range keys {
		tree.Update(k, hashes[j])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := (i * 7919) & (benchKeys - 1)
		tree.Remove(keys[j])
		tree.Update(keys[j], hashes[j])
	}
}

func BenchmarkFNV1a(b *testing.B) {
	for _, k := range []string{"user:123456:profile", "ключ-пользователя-123"} {
		b.Run(strconv.Itoa(len(k)), func(b *testing.B) {
			b.SetBytes(int64(len(k)))
			for i := 0; i < b.N; i++ {
				FNV1a(k)
			}
		})
	}
}

func BenchmarkLWWItemHash(b *testing.B) {
	ts := record.Timestamp{Millis: 1700000000000, Counter: 3, NodeID: "node-b"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		LWWItemHash("user:123456:profile", ts)
	}
}

func BenchmarkORItemHash(b *testing.B) {
	ts := record.Timestamp{Millis: 1700000000000, Counter: 3, NodeID: "node-b"}
	recs := []record.ORMapEntry{
		{Value: record.MapValue(record.Field{Key: "name", Value: record.StringValue("Alice")}, record.Field{Key: "age", Value: record.IntValue(30)}), Tag: "1700000000000:3:node-b", Timestamp: ts},
		{Value: record.StringValue("x"), Tag: "1700000000001:0:node-a", Timestamp: ts},
		{Value: record.FloatValue(0.1), Tag: "1700000000002:0:node-a", Timestamp: ts},
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ORItemHash("room-1", recs)
	}
}
