package sdk

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// FuzzHandle feeds arbitrary calls and request bodies to the guest's
// dispatch, as a host (or a bug in one) could write them into the
// instance's buffer, with the request and the response sharing it as
// inside wasm. A panic there is recovered into CodeInternal, so the target
// fails on that message: nothing in a request may panic the guest. Every
// answer has a code the host knows, and an OK answer decodes as the
// response of its call.
//
//	go test ./sdk -run '^$' -fuzz FuzzHandle -fuzztime 60s
func FuzzHandle(f *testing.F) {
	e := abi.NewEncoder()
	seed := func(call abi.WasmCall, fn func()) {
		e.Reset(nil)
		fn()
		f.Add(uint8(call), false, append([]byte(nil), e.Bytes()...))
		f.Add(uint8(call), true, append([]byte(nil), e.Bytes()...))
	}
	b := &abi.Batch{Now: 3}
	b.Put("m", "k", false, []byte("v"), 0)
	b.Put("m", "j", true, []byte{0, 1}, 9)
	b.Delete("m", "x", false)
	seed(abi.CallOpen, func() { e.OpenRequest(&abi.OpenRequest{Config: map[string]string{"a": "b"}, MaxResponseBytes: 64}) })
	seed(abi.CallApply, func() { e.ApplyRequest(b) })
	seed(abi.CallApplyRuns, func() { e.ApplyRunsRequest(b) })
	seed(abi.CallGet, func() { e.GetRequest("m", false, []string{"k", "j", "k"}) })
	seed(abi.CallScan, func() { e.ScanRequest(&abi.ScanRequest{Map: "m", Limit: 1, Cursor: abi.KeyCursor("a")}) })
	seed(abi.CallListExpired, func() { e.ListExpiredRequest(10, 5) })
	seed(abi.CallListMaps, func() {})
	seed(abi.CallDescribe, func() {})
	f.Fuzz(func(t *testing.T, call uint8, lend bool, req []byte) {
		var opts []Option
		if lend {
			opts = append(opts, LendRecords())
		}
		s := newServer(null.Open(), "", 0, nil).with(opts)
		// Some records for get, scan and list_expired to answer.
		e := abi.NewEncoder()
		e.ApplyRunsRequest(b)
		if st, resp := s.handle(uint32(abi.CallApplyRuns), e.Bytes(), nil); st != 0 {
			t.Fatalf("seeding apply_runs: %d %s", st, resp)
		}
		buf := append(make([]byte, 0, len(req)+64), req...)
		c := abi.WasmCall(call % 10)
		st, resp := s.handle(uint32(c), buf[:len(req)], buf)
		// open sets the process's memory limit, as it does inside wasm.
		debug.SetMemoryLimit(math.MaxInt64)
		code := abi.Code(st & abi.StatusCodeMask)
		if !code.Known() {
			t.Fatalf("%s: status %d is not a code the host knows", c, st)
		}
		if code != abi.CodeOK {
			if strings.Contains(string(resp), "panic in") {
				t.Fatalf("%s of %x panicked: %s", c, req, resp)
			}
			return
		}
		d := abi.NewDecoder()
		d.Reset(resp)
		var err error
		switch c {
		case abi.CallDescribe, abi.CallOpen:
			_, err = d.Description()
		case abi.CallGet:
			_, err = d.Records("m", false)
		case abi.CallScan:
			_, err = d.Page("m", false)
		case abi.CallListMaps:
			_, err = d.Strings()
		case abi.CallListExpired:
			_, err = d.Expired()
		}
		if err == nil {
			err = d.End()
		}
		if err != nil {
			t.Fatalf("%s of %x: the response %x does not decode: %v", c, req, resp, err)
		}
	})
}
