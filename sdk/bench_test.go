package sdk

import (
	"strconv"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// The benchmarks run the guest's side of a call natively: the request is
// already in the buffer, as the host leaves it, and handle decodes it, runs
// null and encodes the response. Their CPU profile is the plugin's PGO
// profile (examples/plugins/null/default.pgo, see the Makefile).

func benchHandle(b *testing.B, call abi.WasmCall, reqs [][]byte, s *server) {
	buf := make([]byte, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := reqs[i%len(reqs)]
		n := copy(buf, req)
		status, resp := s.handle(uint32(call), buf[:n], buf)
		if status != 0 {
			b.Fatalf("%s: status %d: %s", call, status, resp)
		}
		s.afterCall(n, len(resp))
	}
}

func benchBatches(n int) [][]byte { return benchBatchesAs(abi.CallApply, n) }

// benchBatchesAs encodes the batches as the request of call (apply or
// apply_runs).
func benchBatchesAs(call abi.WasmCall, n int) [][]byte {
	e := abi.NewEncoder()
	value := make([]byte, 100)
	reqs := make([][]byte, 10)
	for r := range reqs {
		batch := &abi.Batch{Now: int64(r + 1)}
		for j := 0; j < n; j++ {
			batch.Put("bench", benchKey(r*n+j), false, value, 0)
		}
		e.Reset(nil)
		if call == abi.CallApplyRuns {
			e.ApplyRunsRequest(batch)
		} else {
			e.ApplyRequest(batch)
		}
		reqs[r] = append([]byte(nil), e.Bytes()...)
	}
	return reqs
}

func benchKey(i int) string { return "key-" + strconv.FormatInt(int64(1e15+i), 10) }

// BenchmarkHandle_apply runs batches in both forms: apply_runs is what a
// 1.1 host sends, apply what a 1.0 host sent.
func BenchmarkHandle_apply(b *testing.B) {
	for _, call := range []abi.WasmCall{abi.CallApplyRuns, abi.CallApply} {
		for _, n := range []int{1, 1000} {
			b.Run(call.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				benchHandle(b, call, benchBatchesAs(call, n), newNullServer())
			})
		}
	}
}

// newNullServer serves null as examples/plugins/null does.
func newNullServer() *server { return newServer(null.Open(), "", 0, nil).with([]Option{LendRecords()}) }

func BenchmarkHandle_get(b *testing.B) {
	s := newNullServer()
	for _, req := range benchBatches(1000) {
		buf := append([]byte(nil), req...)
		if status, resp := s.handle(uint32(abi.CallApply), buf, buf); status != 0 {
			b.Fatalf("apply: %s", resp)
		}
	}
	e := abi.NewEncoder()
	reqs := make([][]byte, 100)
	for i := range reqs {
		e.Reset(nil)
		e.GetRequest("bench", false, []string{benchKey(i * 7)})
		reqs[i] = append([]byte(nil), e.Bytes()...)
	}
	benchHandle(b, abi.CallGet, reqs, s)
}
