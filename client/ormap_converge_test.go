package client

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// cutProxy forwards TCP connections on 127.0.0.1 to a server and can cut
// them all at once, losing whatever either side had in flight.
type cutProxy struct {
	l     net.Listener
	to    string
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, wsURL string) (*cutProxy, string) {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws://"), "/ws")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, to: addr, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p, "ws://" + l.Addr().String() + "/ws"
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		a, err := p.l.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.to)
		if err != nil {
			_ = a.Close()
			continue
		}
		p.mu.Lock()
		p.conns[a], p.conns[b] = true, true
		p.mu.Unlock()
		for _, d := range [][2]net.Conn{{a, b}, {b, a}} {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(d[0], d[1])
				_ = d[0].Close()
				_ = d[1].Close()
			}()
		}
	}
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// orGetRetry is ORGet retried while the connection is down or being
// replaced (bounded by waitFor).
func orGetRetry(t *testing.T, c *Client, mapName string, keys ...string) ([]wire.ORMapEntry, error) {
	deadline := time.Now().Add(waitFor)
	for {
		es, err := c.ORGet(ctxT(t), mapName, keys...)
		if err == nil {
			return es, nil
		}
		var ge *ORGetError
		if errors.As(err, &ge) || time.Now().After(deadline) {
			return nil, fmt.Errorf("ORGet: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two clients add and remove OR entries on shared keys concurrently while
// their connections are cut again and again (acks and ops lost in flight,
// everything unacknowledged replayed). In the end both read the same state,
// every acknowledged add not removed is there, and every removed tag is
// gone and tombstoned.
func TestOR_convergesAcrossForcedReconnects(t *testing.T) {
	t.Parallel()
	proxy, url := newCutProxy(t, realServer(t))
	const mapName = "conv"
	keys := []string{"k0", "k1", "k2", "k3"}
	clients := []*Client{dial(t, url, testOptions(t)), dial(t, url, testOptions(t))}

	type entry struct{ key, value string }
	var mu sync.Mutex
	added := map[string]entry{}  // tag → its add, acknowledged
	removed := map[string]bool{} // tags whose remove was acknowledged
	known := map[string]string{} // tag → key, for picking removes

	const rounds, maxCuts = 60, 20
	var ops atomic.Int32
	cutReq := make(chan struct{}, 1)
	cutterDone := make(chan struct{})
	var cuts atomic.Int32
	go func() {
		defer close(cutterDone)
		for range cutReq {
			if cuts.Add(1) <= maxCuts {
				proxy.cut()
			}
		}
	}()
	step := func() {
		if ops.Add(1)%7 == 0 {
			select {
			case cutReq <- struct{}{}:
			default:
			}
		}
	}
	pickTag := func(i, r int) (string, string, bool) {
		mu.Lock()
		defer mu.Unlock()
		var tags []string
		for tag := range known {
			if !removed[tag] {
				tags = append(tags, tag)
			}
		}
		if len(tags) == 0 {
			return "", "", false
		}
		slices.Sort(tags)
		tag := tags[(i*31+r*17)%len(tags)]
		return tag, known[tag], true
	}

	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				key := keys[(r+i)%len(keys)]
				switch {
				case r%5 == 4:
					es, err := orGetRetry(t, c, mapName, key)
					if err != nil {
						errs <- fmt.Errorf("client %d round %d: %w", i, r, err)
						return
					}
					for _, e := range es {
						mu.Lock()
						for _, rec := range e.Records {
							known[rec.Tag] = e.Key
						}
						mu.Unlock()
					}
				case r%3 == 2:
					tag, k, ok := pickTag(i, r)
					if !ok {
						continue
					}
					// A remove and an add in one Batch call.
					v := fmt.Sprintf("c%d-r%d", i, r)
					addTag := c.NewTag()
					err := c.Batch(ctxT(t), Op{Map: mapName, Key: k, OR: true, Remove: true, Tag: tag},
						Op{Map: mapName, Key: key, Value: v, OR: true, Tag: addTag})
					if err != nil {
						errs <- fmt.Errorf("client %d round %d: Batch: %w", i, r, err)
						return
					}
					mu.Lock()
					removed[tag] = true
					added[addTag] = entry{key, v}
					known[addTag] = key
					mu.Unlock()
				default:
					v := fmt.Sprintf("c%d-r%d", i, r)
					tag, err := c.ORAdd(ctxT(t), mapName, key, v, 0)
					if err != nil {
						errs <- fmt.Errorf("client %d round %d: ORAdd: %w", i, r, err)
						return
					}
					mu.Lock()
					added[tag] = entry{key, v}
					known[tag] = key
					mu.Unlock()
				}
				step()
			}
		}()
	}
	wg.Wait()
	close(cutReq)
	<-cutterDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d adds, %d removes, %d cuts", len(added), len(removed), min(cuts.Load(), maxCuts))
	for i, c := range clients {
		if n := c.Pending(); n != 0 {
			t.Fatalf("client %d: %d writes still pending after every call returned", i, n)
		}
	}

	type state struct {
		records    map[string]string // tag → value
		tombstones map[string]bool
	}
	read := func(c *Client) map[string]state {
		out := map[string]state{}
		es, err := orGetRetry(t, c, mapName, keys...)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			st := state{records: map[string]string{}, tombstones: map[string]bool{}}
			for _, r := range e.Records {
				if _, dup := st.records[r.Tag]; dup {
					t.Errorf("key %s: tag %s held twice", e.Key, r.Tag)
				}
				st.records[r.Tag], _ = r.Value.(string)
			}
			for _, tomb := range e.Tombstones {
				st.tombstones[tomb] = true
			}
			out[e.Key] = st
		}
		return out
	}
	s0, s1 := read(clients[0]), read(clients[1])
	for _, k := range keys {
		a, b := s0[k], s1[k]
		if fmt.Sprint(a.records) != fmt.Sprint(b.records) || fmt.Sprint(a.tombstones) != fmt.Sprint(b.tombstones) {
			t.Errorf("key %s: the clients read different states:\n%v\n%v", k, a, b)
		}
	}
	for tag, e := range added {
		got, ok := s0[e.key].records[tag]
		switch {
		case removed[tag] && ok:
			t.Errorf("tag %s (%s) was removed and is still present", tag, e.value)
		case removed[tag] && !s0[known[tag]].tombstones[tag]:
			t.Errorf("removed tag %s has no tombstone", tag)
		case !removed[tag] && (!ok || got != e.value):
			t.Errorf("acknowledged add %s of %q to %s lost (found %q, %v)", tag, e.value, e.key, got, ok)
		}
	}
	for _, k := range keys {
		for tag := range s0[k].records {
			if _, ok := added[tag]; !ok {
				t.Errorf("key %s holds tag %s that no acknowledged add made", k, tag)
			}
		}
	}
}
