package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/plugins/redb"
	srvhlc "github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/protocol"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// This file is a randomized model test of sync convergence: Go clients
// (LWW) and raw WebSocket clients (OR-Map, speaking TopGun's messages) write
// concurrently, write while the server is down, reconnect and sync, with
// server restarts on redb and tombstone collections in between. At the
// end every client and the server must hold the same state, no
// acknowledged write may be lost, and POST /sync deltas must agree with
// what WebSocket sync delivers.

const (
	convLWW = "conv_lww"
	convOR  = "conv_or"
	convTTL = 300 * time.Millisecond
)

// convServer is this project's server on a redb file, restartable on the
// same loopback address.
type convServer struct {
	t    *testing.T
	path string
	addr string
	be   *redb.Backend
	st   *store.Store
	srv  *protocol.Server
	hs   *http.Server
}

func (s *convServer) start() {
	s.t.Helper()
	ctx := context.Background()
	be, err := redb.Open(ctx, s.path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	clock, err := srvhlc.New("server-1", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	st, err := store.Open(ctx, be, &store.Options{Clock: clock, Logger: testLogger(s.t),
		TombstoneTTL: convTTL, GCInterval: time.Hour, GCStartDelay: time.Hour, ReapInterval: 50 * time.Millisecond})
	if err != nil {
		s.t.Fatal(err)
	}
	// Few records per POST /sync answer, so deltas come in pages.
	srv, err := protocol.New(st, &protocol.Options{Logger: testLogger(s.t), MaxQueryResults: 3})
	if err != nil {
		s.t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	for i := 0; ; i++ {
		l, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if i == 100 {
			s.t.Fatalf("listen again on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.addr = l.Addr().String()
	s.be, s.st, s.srv = be, st, srv
	s.hs = &http.Server{Handler: mux}
	go s.hs.Serve(l)
}

func (s *convServer) stop() {
	s.srv.Close()
	s.hs.Close()
	s.st.Close()
	s.be.Close()
	s.st = nil
}

func (s *convServer) url() string { return "ws://" + s.addr + "/ws" }

// goPeer is a Go client with the LWW state it learnt through SyncMap.
type goPeer struct {
	name  string
	c     *Client
	mu    sync.Mutex
	local map[string]wire.LWWRecord
	// last is, per key, the client's last write that was acknowledged
	// (value; "" for a remove; "ttl:" and the value for a put with a TTL).
	last map[string]string
}

func (p *goPeer) snapshot() map[string]wire.LWWRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]wire.LWWRecord, len(p.local))
	for k, v := range p.local {
		out[k] = v
	}
	return out
}

// sync runs SyncMap until the client is connected and the call succeeds,
// and applies what wins.
func (p *goPeer) sync(t *testing.T) *SyncResult {
	t.Helper()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err := p.c.SyncMap(ctx, convLWW, p.snapshot())
		cancel()
		if err == nil {
			p.mu.Lock()
			for _, r := range res.Newer {
				if l, ok := p.local[r.Key]; !ok || r.Record.Timestamp.Compare(l.Timestamp) > 0 {
					p.local[r.Key] = r.Record
				}
			}
			p.mu.Unlock()
			return res
		}
		if i == 200 {
			t.Fatalf("%s: SyncMap: %v", p.name, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (p *goPeer) prune(before wire.Timestamp) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, r := range p.local {
		if r.Value == nil && r.Timestamp.Compare(before) < 0 {
			delete(p.local, k)
		}
	}
}

// orState is one key of an OR-Map as a client holds it.
type orState struct {
	records map[string]wire.ORMapRecord // by tag
	tombs   map[string]bool
}

// rawPeer is a raw WebSocket client writing an OR-Map as TopGun's client
// does: OR_ADD/OR_REMOVE in OP_BATCH (queued while offline and re-sent
// until acknowledged), and the ORMAP_* Merkle drill-down.
type rawPeer struct {
	t       *testing.T
	name    string
	ws      *websocket.Conn
	msgs    chan wire.Message
	millis  uint64
	counter uint32
	nextID  int
	pending []wire.ClientOp
	state   map[string]*orState
}

func (p *rawPeer) now() wire.Timestamp {
	ms := uint64(time.Now().UnixMilli())
	if ms > p.millis {
		p.millis, p.counter = ms, 0
	} else {
		p.counter++
	}
	return wire.Timestamp{Millis: p.millis, Counter: p.counter, NodeID: p.name}
}

func (p *rawPeer) key(k string) *orState {
	s := p.state[k]
	if s == nil {
		s = &orState{records: map[string]wire.ORMapRecord{}, tombs: map[string]bool{}}
		p.state[k] = s
	}
	return s
}

func (p *rawPeer) connect(url string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		p.t.Fatalf("%s: dial: %v", p.name, err)
	}
	ws.SetReadLimit(64 << 20)
	msgs := make(chan wire.Message, 10000)
	go func() {
		defer close(msgs)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			m, err := wire.Decode(b)
			if err != nil {
				p.t.Errorf("%s: undecodable frame: %v", p.name, err)
				return
			}
			msgs <- m
		}
	}()
	p.ws, p.msgs = ws, msgs
}

func (p *rawPeer) disconnect() {
	if p.ws != nil {
		p.ws.CloseNow()
		p.ws = nil
	}
}

func (p *rawPeer) send(m wire.Message) bool {
	b, err := wire.Encode(m)
	if err != nil {
		p.t.Fatalf("%s: encode: %v", p.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.ws.Write(ctx, websocket.MessageBinary, b) == nil
}

// next returns the next message that is not an event; ok is false when the
// connection ended.
func (p *rawPeer) next() (wire.Message, bool) {
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-p.msgs:
			if !ok {
				return nil, false
			}
			switch m.(type) {
			case *wire.ServerEvent, *wire.GCPrune, *wire.Pong:
				continue
			}
			return m, true
		case <-timeout:
			p.t.Fatalf("%s: no answer within 20s", p.name)
		}
	}
}

func (p *rawPeer) addOp(k, v string, ttl uint64) {
	ts := p.now()
	rec := wire.ORMapRecord{Value: v, Timestamp: ts, Tag: ts.String()}
	if ttl > 0 {
		rec.TTLMs = &ttl
	}
	p.key(k).records[rec.Tag] = rec
	p.queue(wire.ClientOp{MapName: convOR, Key: k, OpType: "OR_ADD", ORRecord: &rec})
}

// removeOp removes a random live tag of key k; false when it has none.
func (p *rawPeer) removeOp(rng *rand.Rand, k string) bool {
	s := p.state[k]
	if s == nil || len(s.records) == 0 {
		return false
	}
	tags := make([]string, 0, len(s.records))
	for tag := range s.records {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	tag := tags[rng.IntN(len(tags))]
	delete(s.records, tag)
	s.tombs[tag] = true
	p.queue(wire.ClientOp{MapName: convOR, Key: k, OpType: "OR_REMOVE", ORTag: &tag})
	return true
}

func (p *rawPeer) queue(op wire.ClientOp) {
	p.nextID++
	op.ID = strconv.Itoa(p.nextID)
	p.pending = append(p.pending, op)
}

// flush sends the pending ops (online only) and waits for their ack;
// it returns the ops acknowledged.
func (p *rawPeer) flush() []wire.ClientOp {
	if p.ws == nil || len(p.pending) == 0 {
		return nil
	}
	if !p.send(&wire.OpBatch{Ops: p.pending}) {
		return nil
	}
	for {
		m, ok := p.next()
		if !ok {
			return nil
		}
		switch m := m.(type) {
		case *wire.OpAck:
			last, err := strconv.Atoi(m.LastID)
			if err != nil || last == 0 {
				continue // a push's ack
			}
			n := 0
			for n < len(p.pending) {
				id, _ := strconv.Atoi(p.pending[n].ID)
				if id > last {
					break
				}
				n++
			}
			acked := p.pending[:n:n]
			p.pending = p.pending[n:]
			if len(p.pending) > 0 {
				if !p.send(&wire.OpBatch{Ops: p.pending}) {
					return acked
				}
				more := p.flush()
				return append(acked, more...)
			}
			return acked
		case *wire.OpRejected:
			p.t.Errorf("%s: op rejected: %+v", p.name, m)
		case *wire.ErrorMessage:
			p.t.Fatalf("%s: ERROR %d %s", p.name, m.Code, m.Message)
		}
	}
}

func orHash(k string, s *orState) (uint32, bool) {
	recs := make([]record.ORMapEntry, 0, len(s.records))
	for _, r := range s.records {
		recs = append(recs, record.ORMapEntry{Value: record.StringValue(r.Value.(string)),
			Timestamp: record.Timestamp{Millis: r.Timestamp.Millis, Counter: r.Timestamp.Counter, NodeID: r.Timestamp.NodeID},
			Tag:       r.Tag, TTLMs: ttlOf(r.TTLMs)})
	}
	return merkle.ORItemHash(k, recs)
}

func ttlOf(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

func (p *rawPeer) tree() *merkle.Tree {
	tr := merkle.New()
	for k, s := range p.state {
		if h, ok := orHash(k, s); ok {
			tr.Update(k, h)
		}
	}
	return tr
}

// merge applies a server entry as TopGun's ORMap.mergeKey does.
func (p *rawPeer) merge(e wire.ORMapEntry) {
	s := p.key(e.Key)
	for _, tag := range e.Tombstones {
		s.tombs[tag] = true
		delete(s.records, tag)
	}
	for _, r := range e.Records {
		if !s.tombs[r.Tag] {
			if _, ok := s.records[r.Tag]; !ok {
				s.records[r.Tag] = r
			}
		}
	}
}

func (p *rawPeer) entry(k string) wire.ORMapEntry {
	s := p.key(k)
	e := wire.ORMapEntry{Key: k, Records: []wire.ORMapRecord{}, Tombstones: []string{}}
	for _, r := range s.records {
		e.Records = append(e.Records, r)
	}
	for tag := range s.tombs {
		e.Tombstones = append(e.Tombstones, tag)
	}
	return e
}

// sync runs the OR-Map drill-down; it returns whether the roots were
// equal from the start, and false for ok when the connection ended.
func (p *rawPeer) sync() (inSync, ok bool) {
	tr := p.tree()
	if !p.send(&wire.ORMapSyncInit{MapName: convOR, RootHash: tr.Root()}) {
		return false, false
	}
	var root *wire.ORMapSyncRespRoot
	for root == nil {
		m, ok := p.next()
		if !ok {
			return false, false
		}
		root, _ = m.(*wire.ORMapSyncRespRoot)
	}
	if root.RootHash == tr.Root() {
		return true, true
	}
	paths := []string{""}
	for len(paths) > 0 {
		path := paths[0]
		paths = paths[1:]
		if !p.send(&wire.ORMapMerkleReqBucket{MapName: convOR, Path: path}) {
			return false, false
		}
		for done := false; !done; {
			m, ok := p.next()
			if !ok {
				return false, false
			}
			switch m := m.(type) {
			case *wire.ORMapSyncRespBuckets:
				if m.Path != path {
					continue
				}
				done = true
				local := tr.Buckets(path)
				for ch, h := range m.Buckets {
					if local[ch] != h {
						paths = append(paths, path+ch)
					}
				}
				var push []wire.ORMapEntry
				for ch := range local {
					if _, ok := m.Buckets[ch]; !ok {
						for k, s := range p.state {
							if strings.HasPrefix(merkle.Path(k), path+ch) && len(s.records)+len(s.tombs) > 0 {
								push = append(push, p.entry(k))
							}
						}
					}
				}
				if len(push) > 0 && !p.send(&wire.ORMapPushDiff{MapName: convOR, Entries: push}) {
					return false, false
				}
			case *wire.ORMapSyncRespLeaf:
				if m.Path != path {
					continue
				}
				done = true
				var push []wire.ORMapEntry
				for _, e := range m.Entries {
					p.merge(e)
					push = append(push, p.entry(e.Key))
				}
				if len(push) > 0 && !p.send(&wire.ORMapPushDiff{MapName: convOR, Entries: push}) {
					return false, false
				}
			case *wire.ErrorMessage:
				p.t.Fatalf("%s: ERROR %d %s", p.name, m.Code, m.Message)
			}
		}
	}
	return false, true
}

func (p *rawPeer) live() map[string][]string {
	out := map[string][]string{}
	for k, s := range p.state {
		for tag := range s.records {
			out[k] = append(out[k], tag)
		}
		sort.Strings(out[k])
	}
	return out
}

// httpSync posts one POST /sync asking for the deltas of convLWW since ts.
func httpSync(t *testing.T, addr string, since wire.Timestamp) *wire.HTTPSyncResponse {
	t.Helper()
	body, err := wire.EncodeHTTPSyncRequest(&wire.HTTPSyncRequest{ClientID: "http-1",
		ClientHLC: wire.Timestamp{Millis: uint64(time.Now().UnixMilli()), NodeID: "http-1"},
		SyncMaps:  []wire.SyncMapEntry{{MapName: convLWW, LastSyncTimestamp: since}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/sync", "application/x-msgpack", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /sync: %d %s", resp.StatusCode, b)
	}
	r, err := wire.DecodeHTTPSyncResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// httpPull brings an HTTP client's LWW state up to date, page by page.
func httpPull(t *testing.T, addr string, since wire.Timestamp, state map[string]wire.LWWRecord) wire.Timestamp {
	t.Helper()
	for i := 0; i < 1000; i++ {
		r := httpSync(t, addr, since)
		if len(r.Errors) > 0 {
			t.Fatalf("POST /sync errors: %+v", r.Errors)
		}
		if len(r.Deltas) != 1 {
			t.Fatalf("POST /sync: %d deltas, want 1", len(r.Deltas))
		}
		d := r.Deltas[0]
		for _, rec := range d.Records {
			if l, ok := state[rec.Key]; !ok || rec.Record.Timestamp.Compare(l.Timestamp) > 0 {
				state[rec.Key] = rec.Record
			}
		}
		next := d.ServerSyncTimestamp
		if len(d.Records) == 0 || next.Compare(since) == 0 {
			return next
		}
		since = next
	}
	t.Fatal("POST /sync deltas never ended")
	return since
}

func liveLWW(m map[string]wire.LWWRecord) map[string]string {
	out := map[string]string{}
	for k, r := range m {
		if r.Value != nil {
			out[k] = fmt.Sprint(r.Value)
		}
	}
	return out
}

func TestConvergence_model(t *testing.T) {
	if testing.Short() {
		t.Skip("a model run of several seconds per seed")
	}
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d (the steps depend on it; timing may still vary)", seed)
			runConvergence(t, seed, 150)
		})
	}
}

func runConvergence(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	srv := &convServer{t: t, path: filepath.Join(t.TempDir(), "conv.redb")}
	srv.start()
	defer func() {
		if srv.st != nil {
			srv.stop()
		}
	}()
	keys := []string{"a", "b", "日本", "😀", "e\u0301", "k5", "k6", "k7"}

	var gos []*goPeer
	for i := 0; i < 2; i++ {
		p := &goPeer{name: fmt.Sprint("go", i), local: map[string]wire.LWWRecord{}, last: map[string]string{}}
		o := DefaultOptions()
		o.NodeID = p.name
		o.Logger = testLogger(t)
		o.BackoffInitial, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
		o.MaxReconnectAttempts = 0
		o.OnGCPrune = p.prune
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, srv.url(), o)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p.c = c
		gos = append(gos, p)
	}
	var raws []*rawPeer
	orAcked := map[string]bool{} // tags added and acknowledged
	orRemoved := map[string]bool{}
	orKeyOf := map[string]string{}
	for i := 0; i < 2; i++ {
		p := &rawPeer{t: t, name: fmt.Sprint("raw", i), state: map[string]*orState{}}
		p.connect(srv.url())
		defer p.disconnect()
		raws = append(raws, p)
	}
	orTTL := map[string]bool{}
	randTTL := func() uint64 {
		if rng.IntN(6) == 0 {
			return uint64(50 + rng.IntN(400))
		}
		return 0
	}
	noteAcked := func(ops []wire.ClientOp) {
		for _, op := range ops {
			if op.ORRecord != nil {
				if op.ORRecord.TTLMs != nil {
					orTTL[op.ORRecord.Tag] = true
				}
				orAcked[op.ORRecord.Tag] = true
				orKeyOf[op.ORRecord.Tag] = op.Key
			} else {
				orRemoved[*op.ORTag] = true
			}
		}
	}
	seq := 0
	goWrite := func(p *goPeer, ops []Op) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.c.Batch(ctx, ops...); err != nil {
			t.Errorf("%s: write %+v: %v", p.name, ops, err)
			return
		}
		p.mu.Lock()
		for _, o := range ops {
			if o.Remove {
				p.last[o.Key] = ""
			} else if o.TTL > 0 {
				p.last[o.Key] = "ttl:" + o.Value.(string)
			} else {
				p.last[o.Key] = o.Value.(string)
			}
		}
		p.mu.Unlock()
	}
	randOps := func(p *goPeer, n int) []Op {
		var ops []Op
		used := map[string]bool{}
		for len(ops) < n {
			k := keys[rng.IntN(len(keys))]
			if used[k] {
				continue
			}
			used[k] = true
			seq++
			if rng.IntN(4) == 0 {
				ops = append(ops, Op{Map: convLWW, Key: k, Remove: true})
			} else {
				op := Op{Map: convLWW, Key: k, Value: fmt.Sprintf("%s-%d", p.name, seq)}
				if rng.IntN(6) == 0 {
					op.TTL = time.Duration(50+rng.IntN(400)) * time.Millisecond
				}
				ops = append(ops, op)
			}
		}
		return ops
	}
	restarts, gcs := 0, 0
	for step := 0; step < steps; step++ {
		switch r := rng.IntN(100); {
		case r < 35: // Go client write, online
			p := gos[rng.IntN(len(gos))]
			goWrite(p, randOps(p, 1+rng.IntN(2)))
		case r < 45: // a burst: the Go clients write concurrently while
			// the raw clients write and everyone syncs
			var wg sync.WaitGroup
			for _, p := range gos {
				var calls [][]Op
				for n := 1 + rng.IntN(4); n > 0; n-- {
					calls = append(calls, randOps(p, 1+rng.IntN(3)))
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, ops := range calls {
						goWrite(p, ops)
					}
				}()
			}
			for n := 1 + rng.IntN(4); n > 0; n-- {
				p := raws[rng.IntN(len(raws))]
				seq++
				p.addOp(keys[rng.IntN(len(keys))], fmt.Sprintf("%s-%d", p.name, seq), randTTL())
				noteAcked(p.flush())
				if p.ws != nil {
					if _, ok := p.sync(); !ok {
						t.Fatalf("%s: connection lost during sync", p.name)
					}
				}
			}
			gos[rng.IntN(len(gos))].sync(t)
			wg.Wait()
		case r < 60: // raw OR write (online or offline)
			p := raws[rng.IntN(len(raws))]
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(3) > 0 || !p.removeOp(rng, k) {
				seq++
				p.addOp(k, fmt.Sprintf("%s-%d", p.name, seq), randTTL())
			}
			noteAcked(p.flush())
		case r < 67: // raw client drops or comes back
			p := raws[rng.IntN(len(raws))]
			if p.ws != nil {
				p.disconnect()
			} else {
				p.connect(srv.url())
				noteAcked(p.flush())
				if _, ok := p.sync(); !ok {
					t.Fatalf("%s: connection lost during sync", p.name)
				}
			}
		case r < 80: // sync someone
			if rng.IntN(2) == 0 {
				gos[rng.IntN(len(gos))].sync(t)
			} else if p := raws[rng.IntN(len(raws))]; p.ws != nil {
				if _, ok := p.sync(); !ok {
					t.Fatalf("%s: connection lost during sync", p.name)
				}
			}
		case r < 92: // server restart, with offline writes from everyone
			restarts++
			srv.stop()
			for _, p := range raws {
				p.disconnect()
			}
			var wg sync.WaitGroup
			for _, p := range gos {
				if rng.IntN(2) == 0 {
					ops := randOps(p, 1+rng.IntN(3))
					wg.Add(1)
					go func() { defer wg.Done(); goWrite(p, ops) }()
				}
			}
			for _, p := range raws {
				for n := rng.IntN(3); n > 0; n-- {
					k := keys[rng.IntN(len(keys))]
					if rng.IntN(3) > 0 || !p.removeOp(rng, k) {
						seq++
						p.addOp(k, fmt.Sprintf("%s-%d", p.name, seq), randTTL())
					}
				}
			}
			time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
			srv.start()
			wg.Wait()
			for _, p := range raws {
				if rng.IntN(3) > 0 {
					p.connect(srv.url())
					noteAcked(p.flush())
				}
			}
		default: // tombstone collection once every Go client knows every delete
			// Sync right before collecting: a tombstone committed since
			// (by a remove or an expiry) is younger than the TTL and kept.
			gcs++
			time.Sleep(convTTL + 50*time.Millisecond)
			for _, p := range gos {
				p.sync(t)
			}
			n, err := srv.st.CollectTombstones(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("step %d: collected %d tombstones", step, n)
		}
	}
	t.Logf("%d restarts, %d collections", restarts, gcs)

	// Bring everyone back and let them sync until quiet.
	for _, p := range raws {
		if p.ws == nil {
			p.connect(srv.url())
		}
		noteAcked(p.flush())
		if len(p.pending) > 0 {
			t.Fatalf("%s: %d ops never acknowledged", p.name, len(p.pending))
		}
	}
	// Let every TTL pass and the reaper tombstone what expired (an add
	// made offline may arrive expired).
	time.Sleep(time.Second)
	for round := 0; ; round++ {
		all := true
		for _, p := range gos {
			if !p.sync(t).InSync {
				all = false
			}
		}
		for _, p := range raws {
			in, ok := p.sync()
			if !ok {
				t.Fatalf("%s: connection lost during sync", p.name)
			}
			all = all && in
		}
		if all {
			break
		}
		if round == 5 {
			for _, p := range gos {
				res := p.sync(t)
				t.Errorf("%s: root %d, server %d after %d rounds", p.name, res.LocalRoot, res.ServerRoot, round)
			}
			for _, p := range raws {
				t.Errorf("%s: OR root %d, server %d", p.name, p.tree().Root(), srv.st.Root(convOR, store.KindOR))
			}
			break
		}
	}

	// The server's LWW state, and every Go client's, agree.
	server := map[string]wire.LWWRecord{}
	ctx := context.Background()
	for _, k := range keys {
		e, ok, err := srv.st.Get(ctx, convLWW, k)
		if err != nil {
			t.Fatal(err)
		}
		if ok && e.Record.Kind == record.KindLWW {
			server[k] = wire.LWWRecord{Value: e.Record.LWW.Value.ToWire()}
		}
	}
	want := liveLWW(server)
	for _, p := range gos {
		if got := liveLWW(p.snapshot()); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s holds %v, server %v", p.name, got, want)
		}
	}
	// No acknowledged write lost: the final state of a key is some
	// client's last acknowledged write to it, never an older one.
	for _, k := range keys {
		final, live := want[k]
		var lasts []string
		for _, p := range gos {
			if v, ok := p.last[k]; ok {
				lasts = append(lasts, v)
			}
		}
		found := false
		for _, v := range lasts {
			if (v == "" && !live) || (live && v == final) || (strings.HasPrefix(v, "ttl:") && !live) {
				found = true
			}
		}
		if len(lasts) > 0 && !found {
			t.Errorf("key %q: final %q (live %v) is no client's last acknowledged write %q", k, final, live, lasts)
		}
	}

	// OR-Map: every acknowledged add not removed is on the server and on
	// every raw client, and nothing else is.
	wantOR := map[string][]string{}
	for tag := range orAcked {
		if !orRemoved[tag] && !orTTL[tag] {
			wantOR[orKeyOf[tag]] = append(wantOR[orKeyOf[tag]], tag)
		}
	}
	for _, tags := range wantOR {
		sort.Strings(tags)
	}
	gotServer := map[string][]string{}
	for _, k := range keys {
		e, ok, err := srv.st.Get(ctx, convOR, k)
		if err != nil {
			t.Fatal(err)
		}
		if ok && e.Record.Kind == record.KindORMap {
			for _, r := range e.Record.ORMap.Records {
				gotServer[k] = append(gotServer[k], r.Tag)
			}
			sort.Strings(gotServer[k])
		}
	}
	if fmt.Sprint(gotServer) != fmt.Sprint(wantOR) {
		t.Errorf("server OR state %v, want %v", gotServer, wantOR)
	}
	for _, p := range raws {
		if got := p.live(); fmt.Sprint(got) != fmt.Sprint(wantOR) {
			t.Errorf("%s OR state %v, want %v", p.name, got, wantOR)
		}
	}

	// POST /sync: a full pull, then more history (with a restart), then
	// an incremental pull, must give what WebSocket sync gives.
	httpState := map[string]wire.LWWRecord{}
	since := httpPull(t, srv.addr, wire.Timestamp{}, httpState)
	if got := liveLWW(httpState); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("POST /sync full state %v, WebSocket %v", got, want)
	}
	for i := 0; i < 20; i++ {
		p := gos[rng.IntN(len(gos))]
		goWrite(p, randOps(p, 1+rng.IntN(2)))
		if i == 10 {
			srv.stop()
			srv.start()
		}
	}
	// Writes stamped long ago that arrive now (made offline) are changes
	// too: a put of a new key, and a put then remove of another.
	late := raws[0]
	late.disconnect() // its connection did not survive the restart
	late.connect(srv.url())
	old := wire.Timestamp{Millis: uint64(time.Now().Add(-30 * time.Second).UnixMilli()), NodeID: late.name}
	oldRemove := old
	oldRemove.Counter++
	late.queue(wire.ClientOp{MapName: convLWW, Key: "late-put", OpType: "PUT", Record: &wire.LWWRecord{Value: "late", Timestamp: old}})
	late.queue(wire.ClientOp{MapName: convLWW, Key: "late-del", OpType: "PUT", Record: &wire.LWWRecord{Value: "gone", Timestamp: old}})
	late.queue(wire.ClientOp{MapName: convLWW, Key: "late-del", OpType: "REMOVE", Record: &wire.LWWRecord{Timestamp: oldRemove}})
	late.flush()
	if len(late.pending) > 0 {
		t.Fatalf("late writes not acknowledged")
	}
	httpPull(t, srv.addr, since, httpState)
	if r := httpState["late-del"]; r.Value != nil || r.Timestamp != oldRemove {
		t.Errorf("POST /sync: late-del is %+v, want the remove", r)
	}
	for _, p := range gos {
		p.sync(t)
	}
	want = liveLWW(gos[0].snapshot())
	if got := liveLWW(httpState); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("POST /sync incremental state %v, WebSocket %v", got, want)
	}
}
