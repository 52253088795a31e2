package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/plugins/null"
)

// TestLoopback_conformance runs the suite on null served through the whole
// ABI path in process: the same dispatch code as inside wasm.
func TestLoopback_conformance(t *testing.T) {
	abitest.RunConformance(t, abitest.Harness{Open: func(abitest.TB) abi.Backend { return Loopback(null.Open()) }})
}

// panicky embeds *null.Backend, whose ViewGet is promoted past the Get
// it overrides: without LendRecords the SDK must call Get.
type panicky struct{ *null.Backend }

func (p panicky) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if m == "boom" {
		panic("kaboom")
	}
	return p.Backend.Get(ctx, m, backup, keys)
}

// panickyViewer panics in the viewing path the SDK prefers.
type panickyViewer struct{ *null.Backend }

func (p panickyViewer) ViewGet(ctx context.Context, m string, backup bool, keys []string, fn func(*abi.Record)) error {
	if m == "boom" {
		panic("kaboom")
	}
	return p.Backend.ViewGet(ctx, m, backup, keys, fn)
}

func TestDispatch_panicBecomesInternal(t *testing.T) {
	for name, b := range map[string]abi.Backend{
		"Get":     Loopback(panicky{null.Open()}),
		"ViewGet": Loopback(panickyViewer{null.Open()}, LendRecords()),
	} {
		ctx := context.Background()
		_, err := b.Get(ctx, "boom", false, []string{"k"})
		if !errors.Is(err, abi.ErrInternal) || !strings.Contains(err.Error(), "kaboom") {
			t.Fatalf("%s: Get = %v, want CodeInternal naming the panic", name, err)
		}
		// A backend given to Serve has no name but its description's.
		if !strings.Contains(err.Error(), `backend "null": panic in get`) {
			t.Fatalf("%s: Get = %v, want the backend named", name, err)
		}
		if _, err := b.Get(ctx, "fine", false, []string{"k"}); err != nil {
			t.Fatalf("%s: Get after a panic: %v", name, err)
		}
	}
}

// mustHandle runs one call on s and returns its response, failing the test
// on an error status.
func mustHandle(t *testing.T, s *server, call abi.WasmCall, req []byte) []byte {
	t.Helper()
	status, resp := s.handle(uint32(call), req, nil)
	if status != 0 {
		t.Fatalf("%s: status %d: %s", call, status, resp)
	}
	return resp
}

// mustPut applies one put through s (apply_runs) and fails t unless it
// succeeds.
func mustPut(t *testing.T, s *server, mapName, key string, value []byte) {
	t.Helper()
	b := &abi.Batch{Now: 1}
	b.Put(mapName, key, false, value, 0)
	e := abi.NewEncoder()
	e.ApplyRunsRequest(b)
	mustHandle(t, s, abi.CallApplyRuns, e.Bytes())
}

// The SDK answers get and scan the same whether the backend lends its
// records (abi.RecordViewer) or returns copies.
func TestDispatch_viewerSameResponses(t *testing.T) {
	viewer := newServer(null.Open(), "", 0, nil).with([]Option{LendRecords()})
	copier := newServer(null.Open(), "", 0, nil)
	b := &abi.Batch{Now: 3}
	for i := 0; i < 50; i++ {
		b.Put("m", fmt.Sprintf("k%02d", i), false, bytes.Repeat([]byte{byte(i)}, i*10), int64(i%3))
	}
	e := abi.NewEncoder()
	e.ApplyRunsRequest(b)
	for _, s := range []*server{viewer, copier} {
		mustHandle(t, s, abi.CallApplyRuns, e.Bytes())
	}
	var reqs []struct {
		call abi.WasmCall
		body []byte
	}
	add := func(call abi.WasmCall) {
		reqs = append(reqs, struct {
			call abi.WasmCall
			body []byte
		}{call, append([]byte(nil), e.Bytes()...)})
		e.Reset(nil)
	}
	e.Reset(nil)
	e.GetRequest("m", false, []string{"k07", "nope", "k01", "k07"})
	add(abi.CallGet)
	e.GetRequest("absent", false, []string{"k"})
	add(abi.CallGet)
	e.GetRequest("m", false, []string{"k01", "bad\x00key"})
	add(abi.CallGet)
	e.ScanRequest(&abi.ScanRequest{Map: "m", Limit: 7})
	add(abi.CallScan)
	e.ScanRequest(&abi.ScanRequest{Map: "m", Cursor: abi.KeyCursor("k45")})
	add(abi.CallScan)
	e.ScanRequest(&abi.ScanRequest{Map: "m", MaxBytes: 100})
	add(abi.CallScan)
	for i, q := range reqs {
		sv, rv := viewer.handle(uint32(q.call), q.body, nil)
		sc, rc := copier.handle(uint32(q.call), q.body, nil)
		if sv != sc || !bytes.Equal(rv, rc) {
			t.Errorf("request %d (%s): viewer %d %q, copier %d %q", i, q.call, sv, rv, sc, rc)
		}
	}
	// The last scan returned records: through the viewer on one side only.
	if viewer.viewed == 0 || copier.viewed != 0 {
		t.Fatalf("records lent: %d to the viewer, %d to the copier; want some and none", viewer.viewed, copier.viewed)
	}
}

// A backend opened by ServeOpen's function lends its records too.
func TestDispatch_viewerAfterOpen(t *testing.T) {
	s := newServer(nil, "opened", 0, func(map[string]string) (abi.Backend, error) { return null.Open(), nil }).with([]Option{LendRecords()})
	e := abi.NewEncoder()
	e.OpenRequest(&abi.OpenRequest{})
	mustHandle(t, s, abi.CallOpen, e.Bytes())
	mustPut(t, s, "m", "k", []byte("v"))
	e.Reset(nil)
	e.GetRequest("m", false, []string{"k"})
	resp := mustHandle(t, s, abi.CallGet, e.Bytes())
	d := abi.NewDecoder()
	d.Reset(resp)
	recs, err := d.Records("m", false)
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("get: %+v, %v", recs, err)
	}
	if s.viewed != 1 {
		t.Fatalf("%d records lent, want 1", s.viewed)
	}
}

func TestLoopbackOpen(t *testing.T) {
	ctx := context.Background()
	var got map[string]string
	open := func(cfg map[string]string) (abi.Backend, error) {
		got = cfg
		if cfg["fail"] != "" {
			return nil, abi.Errorf(abi.CodeInvalidArgument, "test: bad config %q", cfg["fail"])
		}
		return null.Open(), nil
	}
	dir := t.TempDir()
	b, err := LoopbackOpen(ctx, "thing", abi.CapDurable, open, map[string]string{"a": "1", DataDirKey: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got["a"] != "1" || got[DataDirKey] != dir {
		t.Errorf("open got config %v", got)
	}
	if d := b.Describe(); d.Name != null.Name {
		t.Errorf("description after open = %+v, want the backend's", d)
	}
	_, err = LoopbackOpen(ctx, "thing", 0, open, map[string]string{"fail": "x"})
	if !errors.Is(err, abi.ErrInvalidArgument) || !strings.Contains(err.Error(), `bad config "x"`) {
		t.Errorf("LoopbackOpen with a failing open = %v", err)
	}
}

// call runs one raw call on a server and decodes nothing.
func call(s *server, c abi.WasmCall, req []byte) (abi.Code, string) {
	status, resp := s.handle(uint32(c), req, make([]byte, 0, 64))
	return abi.Code(status & abi.StatusCodeMask), string(resp)
}

func TestDispatch_protocol(t *testing.T) {
	open := func(map[string]string) (abi.Backend, error) { return null.Open(), nil }
	s := newServer(nil, "thing", abi.CapDurable, open)
	e := abi.NewEncoder()
	d := abi.NewDecoder()

	// describe before open gives the declared name and capabilities.
	status, resp := s.handle(uint32(abi.CallDescribe), nil, nil)
	d.Reset(resp)
	desc, err := d.Description()
	if status != 0 || err != nil || desc.Name != "thing" || desc.Capabilities != abi.CapDurable || desc.ABIMajor != abi.VersionMajor {
		t.Errorf("describe before open = %d %+v %v", status, desc, err)
	}
	if code, msg := call(s, abi.CallListMaps, nil); code != abi.CodeUnavailable {
		t.Errorf("list_maps before open = %v %q, want unavailable", code, msg)
	}
	e.OpenRequest(&abi.OpenRequest{MaxResponseBytes: 100})
	open1 := append([]byte(nil), e.Bytes()...)
	if code, msg := call(s, abi.CallOpen, open1); code != abi.CodeOK {
		t.Fatalf("open = %v %q", code, msg)
	}
	if code, _ := call(s, abi.CallOpen, open1); code != abi.CodeConflict {
		t.Errorf("second open = %v, want conflict", code)
	}
	if code, _ := call(s, 99, nil); code != abi.CodeUnsupported {
		t.Errorf("unknown call = %v, want unsupported", code)
	}
	if code, _ := call(s, abi.CallGet, []byte{0xc1}); code != abi.CodeInvalidArgument {
		t.Errorf("garbage get request = %v, want invalid argument", code)
	}
	// A response over max_response_bytes is refused with resource exhausted.
	b := &abi.Batch{Now: 1}
	b.Put("m", "k", false, make([]byte, 200), 0)
	e.Reset(nil)
	e.ApplyRequest(b)
	if code, msg := call(s, abi.CallApply, e.Bytes()); code != abi.CodeOK {
		t.Fatalf("apply = %v %q", code, msg)
	}
	e.Reset(nil)
	e.GetRequest("m", false, []string{"k"})
	if code, msg := call(s, abi.CallGet, e.Bytes()); code != abi.CodeResourceExhausted || !strings.Contains(msg, "TOPGUN_PLUGIN_MAX_RESPONSE_BYTES") {
		t.Errorf("oversized get response = %v %q, want resource exhausted", code, msg)
	}
	if code, _ := call(s, abi.CallClose, nil); code != abi.CodeOK {
		t.Errorf("close = %v", code)
	}
	if code, _ := call(s, abi.CallListMaps, nil); code != abi.CodeUnavailable {
		t.Errorf("list_maps after close = %v, want unavailable", code)
	}
}

func TestDispatch_trailingBytes(t *testing.T) {
	s := newServer(null.Open(), "", 0, nil)
	e := abi.NewEncoder()
	e.GetRequest("m", false, []string{"k"})
	req := append(append([]byte(nil), e.Bytes()...), 0xc0)
	if code, _ := call(s, abi.CallGet, req); code != abi.CodeInvalidArgument {
		t.Errorf("get with a trailing byte = %v, want invalid argument", code)
	}
	if code, _ := call(s, abi.CallListMaps, []byte{0x90}); code != abi.CodeInvalidArgument {
		t.Errorf("list_maps with a body = %v, want invalid argument", code)
	}
}

// The SDK serves both forms of a batch: apply (ABI 1.0 hosts) and
// apply_runs (1.1). The same batch through either leaves the same records.
func TestDispatch_applyForms(t *testing.T) {
	b := &abi.Batch{Now: 5}
	b.Put("m", "a", false, []byte("1"), 0)
	b.Put("m", "b", true, []byte("2"), 9)
	b.Delete("m", "a", false)
	b.Put("other", "c", false, []byte("3"), 0)
	b.Put("m", "a", false, []byte("4"), 0)
	contents := func(s *server) []string {
		var out []string
		e := abi.NewEncoder()
		d := abi.NewDecoder()
		for _, q := range []struct {
			m      string
			backup bool
		}{{"m", false}, {"m", true}, {"other", false}} {
			e.Reset(nil)
			e.GetRequest(q.m, q.backup, []string{"a", "b", "c"})
			resp := mustHandle(t, s, abi.CallGet, e.Bytes())
			d.Reset(resp)
			recs, err := d.Records(q.m, q.backup)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				out = append(out, fmt.Sprintf("%s/%v/%s=%s@%d", r.Map, r.Backup, r.Key, r.Value, r.ExpirationTime))
			}
		}
		return out
	}
	var got [2][]string
	for i, call := range []abi.WasmCall{abi.CallApply, abi.CallApplyRuns} {
		s := newServer(null.Open(), "", 0, nil)
		e := abi.NewEncoder()
		if call == abi.CallApply {
			e.ApplyRequest(b)
		} else {
			e.ApplyRunsRequest(b)
		}
		mustHandle(t, s, call, e.Bytes())
		got[i] = contents(s)
	}
	want := []string{"m/false/a=4@0", "m/true/b=2@9", "other/false/c=3@0"}
	if !reflect.DeepEqual(got[0], want) || !reflect.DeepEqual(got[1], want) {
		t.Fatalf("apply left %v, apply_runs %v; want %v", got[0], got[1], want)
	}
}

// A backend whose live data is above the forced-collection threshold is
// not collected at every yield: after a forced collection the threshold
// rises to twice what it left.
func TestYield_noCollectionAtEveryYieldAboveThreshold(t *testing.T) {
	s := newServer(null.Open(), "", 0, nil)
	s.gcBase, s.gcAbove = 8<<20, 8<<20
	// About 32 MiB of live records: four times the threshold.
	value := make([]byte, 64<<10)
	for i := 0; i < 512; i++ {
		mustPut(t, s, "m", fmt.Sprintf("k%04d", i), value)
	}
	// Calls that make little garbage: a get of a small record.
	mustPut(t, s, "m", "small", []byte("v"))
	e := abi.NewEncoder()
	e.GetRequest("m", false, []string{"small"})
	get := append([]byte(nil), e.Bytes()...)
	s.forcedGCs = 0
	for i := 0; i < 20*yieldCalls; i++ {
		resp := mustHandle(t, s, abi.CallGet, get)
		s.afterCall(len(get), len(resp))
	}
	if s.forcedGCs > 2 {
		t.Fatalf("%d forced collections in %d yields with the live heap above the threshold, want at most 2", s.forcedGCs, 20)
	}
	if s.gcAbove < 2*(32<<20) {
		t.Fatalf("threshold %d after forced collections, want at least twice the live heap", s.gcAbove)
	}
}

// codeBackend answers every get with an error of a code the host does not
// know.
type codeBackend struct{ *null.Backend }

func (codeBackend) Get(context.Context, string, bool, []string) ([]abi.Record, error) {
	return nil, abi.Errorf(abi.Code(10), "a code of a later ABI")
}

// panicDescribe panics in Describe.
type panicDescribe struct{ *null.Backend }

func (panicDescribe) Describe() abi.Description { panic("describe broke") }

// A backend error of a code the host does not know goes out as internal:
// the host takes an unknown code for a malformed result and discards the
// instance with all it holds. A panic in Describe comes back as internal
// too, rather than panicking again while it is reported.
func TestDispatch_errorsTheHostUnderstands(t *testing.T) {
	s := newServer(codeBackend{null.Open()}, "", 0, nil)
	e := abi.NewEncoder()
	e.GetRequest("m", false, []string{"k"})
	if code, msg := call(s, abi.CallGet, e.Bytes()); code != abi.CodeInternal || !strings.Contains(msg, "later ABI") {
		t.Errorf("get with an unknown error code = %v %q, want internal with the message", code, msg)
	}
	p := newServer(panicDescribe{null.Open()}, "broken", 0, nil)
	if code, msg := call(p, abi.CallDescribe, nil); code != abi.CodeInternal || !strings.Contains(msg, "describe broke") {
		t.Errorf("describe that panics = %v %q, want internal", code, msg)
	}
}

// A response over the host's limit is refused before it is encoded, and
// the error goes into the caller's buffer, not a grown one the instance
// would keep as its scratch buffer, through both the copying and the
// lending path.
func TestDispatch_oversizedResponseRefusedEarly(t *testing.T) {
	for name, opts := range map[string][]Option{"copy": nil, "lend": {LendRecords()}} {
		t.Run(name, func(t *testing.T) {
			s := newServer(null.Open(), "", 0, nil).with(opts)
			e := abi.NewEncoder()
			e.OpenRequest(&abi.OpenRequest{MaxResponseBytes: 1 << 20})
			if code, msg := call(s, abi.CallOpen, e.Bytes()); code != abi.CodeOK {
				t.Fatalf("open = %v %q", code, msg)
			}
			b := &abi.Batch{Now: 1}
			var keys []string
			for i := range 16 {
				k := "k" + strconv.Itoa(i)
				keys = append(keys, k)
				b.Put("m", k, false, make([]byte, 1<<20), 0)
			}
			e.Reset(nil)
			e.ApplyRequest(b)
			if code, msg := call(s, abi.CallApply, e.Bytes()); code != abi.CodeOK {
				t.Fatalf("apply = %v %q", code, msg)
			}
			e.Reset(nil)
			e.GetRequest("m", false, keys)
			out := make([]byte, 0, 64<<10)
			status, resp := s.handle(uint32(abi.CallGet), e.Bytes(), out)
			if abi.Code(status&abi.StatusCodeMask) != abi.CodeResourceExhausted {
				t.Fatalf("get of 16 MiB with a 1 MiB limit = %d %q", status, resp)
			}
			if cap(resp) != cap(out) || unsafe.SliceData(resp) != unsafe.SliceData(out) {
				t.Fatalf("the error went into a buffer of %d bytes, not the caller's of %d", cap(resp), cap(out))
			}
		})
	}
}

// A response that fits in max_response_bytes is served, whether the backend
// lends its records or returns copies: the early refusal of oversized get
// and scan responses must not refuse small records whose encoding fits.
func TestDispatch_responseThatFitsIsServed(t *testing.T) {
	b := &abi.Batch{Now: 1}
	var keys []string
	for i := range 20 {
		k := string(rune('a' + i))
		keys = append(keys, k)
		b.Put("m", k, false, []byte("v"), 0)
	}
	e := abi.NewEncoder()
	ref := null.Open()
	if err := ref.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	all, _ := ref.Get(context.Background(), "m", false, keys)
	e.Records(all)
	getSize := e.Len()
	page, _ := ref.Scan(context.Background(), abi.ScanRequest{Map: "m"})
	e.Reset(nil)
	e.Page(&page)
	limit := max(getSize, e.Len()) + 16 // both responses fit
	for name, opts := range map[string][]Option{"copy": nil, "lend": {LendRecords()}} {
		t.Run(name, func(t *testing.T) {
			s := newServer(null.Open(), "", 0, nil).with(opts)
			e := abi.NewEncoder()
			e.OpenRequest(&abi.OpenRequest{MaxResponseBytes: uint32(limit)})
			if code, msg := call(s, abi.CallOpen, e.Bytes()); code != abi.CodeOK {
				t.Fatalf("open = %v %q", code, msg)
			}
			e.Reset(nil)
			e.ApplyRequest(b)
			mustHandle(t, s, abi.CallApply, e.Bytes())
			e.Reset(nil)
			e.GetRequest("m", false, keys)
			if code, msg := call(s, abi.CallGet, e.Bytes()); code != abi.CodeOK {
				t.Errorf("get of a %d-byte response with a %d-byte limit = %v %q; want it served", getSize, limit, code, msg)
			}
			e.Reset(nil)
			e.ScanRequest(&abi.ScanRequest{Map: "m"})
			if code, msg := call(s, abi.CallScan, e.Bytes()); code != abi.CodeOK {
				t.Errorf("scan of a response under the %d-byte limit = %v %q; want it served", limit, code, msg)
			}
		})
	}
}

// limitSpy records the response limit its calls see in their context.
type limitSpy struct {
	*null.Backend
	seen int
}

func (b *limitSpy) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	b.seen = abi.ResponseLimit(ctx)
	return b.Backend.Get(ctx, m, backup, keys)
}

// TestDispatch_backendSeesResponseLimit checks that a backend learns the
// host's response limit (abi.ResponseLimit), so that it can refuse a get it
// cannot answer before reading the values into memory.
func TestDispatch_backendSeesResponseLimit(t *testing.T) {
	spy := &limitSpy{Backend: null.Open()}
	b, err := LoopbackOpen(context.Background(), "spy", 0, func(map[string]string) (abi.Backend, error) { return spy, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Get(context.Background(), "m", false, []string{"k"}); err != nil {
		t.Fatal(err)
	}
	if spy.seen != 32<<20 {
		t.Fatalf("the backend saw a response limit of %d, want the host's %d", spy.seen, 32<<20)
	}
}

// manyMaps is a backend that lists more maps than a list_maps response
// may hold.
type manyMaps struct{ *null.Backend }

func (manyMaps) ListMaps(context.Context) ([]string, error) {
	names := make([]string, abi.MaxMaps+1)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	return names, nil
}

// A list_maps response holds at most abi.MaxMaps names (WASM.md 3.3; the
// host discards an instance that sends more, and with it what the plugin
// keeps in memory): with more, the SDK answers resource_exhausted.
func TestDispatch_listMapsAtMostMaxMaps(t *testing.T) {
	s := newServer(manyMaps{null.Open()}, "", 0, nil)
	e := abi.NewEncoder()
	e.OpenRequest(&abi.OpenRequest{})
	if code, msg := call(s, abi.CallOpen, e.Bytes()); code != abi.CodeOK {
		t.Fatalf("open = %v %q", code, msg)
	}
	if code, msg := call(s, abi.CallListMaps, nil); code != abi.CodeResourceExhausted {
		t.Fatalf("list_maps of %d maps = %v (%d bytes); want resource_exhausted", abi.MaxMaps+1, code, len(msg))
	}
}

// A list_expired call ends with a yield whatever its traffic: the backend
// may walk every expired record to answer a few (null does), garbage the
// traffic does not show. (What keeps the host's
// TestMemory_listExpiredStaysFlat within its 64 MiB is Go's soft memory
// limit, which open sets: without it the instance ran out of memory.)
func TestYield_afterListExpired(t *testing.T) {
	s := newServer(null.Open(), "", 0, nil)
	mustPut(t, s, "m", "k", []byte("v"))
	e := abi.NewEncoder()
	e.ListExpiredRequest(10, 1)
	resp := mustHandle(t, s, abi.CallListExpired, e.Bytes())
	s.afterCall(len(e.Bytes()), len(resp))
	if s.calls != 0 || s.work != 0 {
		t.Fatalf("after list_expired: %d calls and %d bytes since the last yield, want a yield", s.calls, s.work)
	}
}

// unnamed is a backend whose description has no name, which a host
// refuses at load.
type unnamed struct{ *null.Backend }

func (unnamed) Describe() abi.Description {
	return abi.Description{Capabilities: abi.CapAtomicBatch}
}

// Loopback of a backend the host would refuse at load names the cause. It
// returned a nil *loopback instead, whose first call panicked with a nil
// dereference that hid it.
func TestLoopback_invalidDescriptionNamesCause(t *testing.T) {
	var b abi.Backend
	msg := func() (msg string) {
		defer func() {
			if r := recover(); r != nil {
				msg = fmt.Sprint(r)
			}
		}()
		b = Loopback(unnamed{null.Open()})
		return ""
	}()
	if !strings.Contains(msg, "backend name") {
		t.Fatalf("Loopback of a backend without a name returned %#v and panicked with %q; want a panic naming the name", b, msg)
	}
}

// A lent record whose encoding cannot fit in the host's limit is refused
// before it is encoded: encoding it took up to a whole value more than the
// limit (and the side buffer's growth), which ran a 64 MiB instance out of
// memory on a get the host refuses anyway (host's
// TestMemory_refusedGetKeepsRecords).
func TestDispatch_lendStopsBeforeRecordOverLimit(t *testing.T) {
	const limit = 1 << 20
	s := newServer(null.Open(), "", 0, nil).with([]Option{LendRecords()})
	e := abi.NewEncoder()
	e.OpenRequest(&abi.OpenRequest{MaxResponseBytes: limit})
	if code, msg := call(s, abi.CallOpen, e.Bytes()); code != abi.CodeOK {
		t.Fatalf("open = %v %q", code, msg)
	}
	value := make([]byte, 600<<10)
	for _, k := range []string{"a", "b", "c"} {
		mustPut(t, s, "m", k, value)
	}
	for _, q := range []struct {
		call abi.WasmCall
		req  func()
	}{
		{abi.CallGet, func() { e.GetRequest("m", false, []string{"a", "b", "c"}) }},
		{abi.CallScan, func() { e.ScanRequest(&abi.ScanRequest{Map: "m", MaxBytes: 4 << 20}) }},
	} {
		e.Reset(nil)
		q.req()
		code, msg := call(s, q.call, e.Bytes())
		if code != abi.CodeResourceExhausted {
			t.Fatalf("%s of 1.8 MiB with a 1 MiB limit = %v %q; want resource exhausted", q.call, code, msg)
		}
		if n := len(s.side.Bytes()); n > limit {
			t.Errorf("%s: %d bytes of records encoded for a response limited to %d", q.call, n, limit)
		}
	}
}

// otherMajor describes a storage ABI major the host does not implement.
type otherMajor struct{ *null.Backend }

func (otherMajor) Describe() abi.Description {
	return abi.Description{Name: "other", ABIMajor: abi.VersionMajor + 1, Capabilities: abi.CapAtomicBatch}
}

// A host refuses a plugin whose description names another ABI major
// (abi/WASM.md section 2), so Loopback must too: a plugin's native tests
// passed while the host refused to load it.
func TestLoopback_otherMajorRefused(t *testing.T) {
	msg := func() (msg string) {
		defer func() {
			if r := recover(); r != nil {
				msg = fmt.Sprint(r)
			}
		}()
		Loopback(otherMajor{null.Open()})
		return ""
	}()
	if !strings.Contains(msg, "ABI 2.0") {
		t.Fatalf("Loopback of a backend describing ABI %d panicked with %q; want a panic naming the major", abi.VersionMajor+1, msg)
	}
	_, err := LoopbackOpen(context.Background(), "other", abi.CapAtomicBatch, func(map[string]string) (abi.Backend, error) {
		return otherMajor{null.Open()}, nil
	}, nil)
	if !errors.Is(err, abi.ErrInvalidArgument) {
		t.Fatalf("LoopbackOpen of a backend describing ABI %d = %v; want invalid argument", abi.VersionMajor+1, err)
	}
}

// Loopback pages a scan as the host does: a page asked for with a byte
// budget or a record limit over what fits in a response is cut to the
// host's, so a native test passes where the wasm build does. Unclamped, a
// scan of large values asked for in 64 MiB pages failed natively with a
// response over the limit, while the host served it in 16 MiB pages.
func TestLoopback_scanClampedAsTheHostDoes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := Loopback(null.Open())
	defer b.Close()
	bt := &abi.Batch{Now: 1}
	val := bytes.Repeat([]byte{'v'}, abi.MaxValueBytes-64)
	for i := range 6 {
		bt.Put("m", strconv.Itoa(i), false, val, 0)
	}
	if err := b.Apply(ctx, bt); err != nil {
		t.Fatal(err)
	}
	n := 0
	req := abi.ScanRequest{Map: "m", MaxBytes: 64 << 20, Limit: 2 * abi.MaxGetKeys}
	for pages := 0; ; pages++ {
		if pages > 6 {
			t.Fatal("the scan does not end")
		}
		p, err := b.Scan(ctx, req)
		if err != nil {
			t.Fatalf("scan in pages of 64 MiB: %v", err)
		}
		n += len(p.Records)
		if p.Cursor == nil {
			break
		}
		req.Cursor = p.Cursor
	}
	if n != 6 {
		t.Fatalf("the scan returned %d records, want 6", n)
	}
	if _, err := b.ListExpired(ctx, 1, 2*abi.MaxGetKeys); err != nil {
		t.Fatalf("list_expired with a limit over MaxGetKeys: %v", err)
	}
}
