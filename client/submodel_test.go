package client

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// subView is what a subscriber holds of a live query: the result set,
// then the live-query changes after it, replaced by each Reset.
type subView struct {
	mu     sync.Mutex
	view   map[string]any
	resets int
	done   chan struct{}
}

func newSubView(s *Subscription) *subView {
	v := &subView{view: map[string]any{}, done: make(chan struct{})}
	for _, r := range s.Initial {
		v.view[r.Key] = r.Value
	}
	go func() {
		defer close(v.done)
		for u := range s.Updates {
			v.mu.Lock()
			switch {
			case u.Reset:
				v.resets++
				v.view = map[string]any{}
				for _, r := range u.Results {
					v.view[r.Key] = r.Value
				}
			case u.Event != nil:
			case u.Change == wire.Leave:
				delete(v.view, u.Key)
			default:
				v.view[u.Key] = u.Value
			}
			v.mu.Unlock()
		}
	}()
	return v
}

func (v *subView) snapshot() map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := make(map[string]any, len(v.view))
	for k, x := range v.view {
		m[k] = x
	}
	return m
}

func resultMap(rs []wire.QueryResult) map[string]any {
	m := make(map[string]any, len(rs))
	for _, r := range rs {
		m[r.Key] = r.Value
	}
	return m
}

// Random writes, removes, batches and expiring writes by one client (three
// goroutines), while the connections are cut again and again and a
// subscriber holding several live queries (filtered, sorted and limited,
// on values of mixed types) opens and closes others: in the end what each
// query's subscriber holds (its result set, the live-query changes after
// it, replaced at each Reset) equals a fresh query's result, and nothing
// reaches a subscription after its Close.
func TestSubscribe_modelAcrossForcedReconnects(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			runSubModel(t, seed)
		})
	}
}

func runSubModel(t *testing.T, seed uint64) {
	t.Logf("seed %d", seed)
	srvURL := realServer(t)
	proxy, url := newCutProxy(t, srvURL)
	const mapName = "submodel"
	writer := dial(t, url, testOptions(t))
	// The model is about reconnects, not slow consumers: a drain
	// goroutine starved on a loaded machine must not close a subscription
	// (ErrSlowConsumer) with every update of the run still to come.
	ropts := testOptions(t)
	ropts.SubscriptionBuffer = 1 << 14
	reader := dial(t, url, ropts)

	u32 := func(n uint32) *uint32 { return &n }
	queries := map[string]*wire.Query{
		"all":       nil,
		"where":     {Where: map[string]any{"n": map[string]any{"$gte": int64(5)}}},
		"top3":      {Sort: []wire.SortField{{Field: "n", Direction: wire.Asc}}, Limit: u32(3)},
		"bottom2":   {Sort: []wire.SortField{{Field: "n", Direction: wire.Desc}}, Limit: u32(2)},
		"whereTop2": {Where: map[string]any{"n": map[string]any{"$lt": int64(7)}}, Sort: []wire.SortField{{Field: "n", Direction: wire.Desc}}, Limit: u32(2)},
	}
	views := map[string]*subView{}
	subs := map[string]*Subscription{}
	for name, q := range queries {
		s, err := reader.Subscribe(ctxT(t), mapName, q)
		if err != nil {
			t.Fatal(err)
		}
		subs[name] = s
		views[name] = newSubView(s)
	}

	const steps, writers = 200, 3
	var wg sync.WaitGroup
	stopCuts := make(chan struct{})
	cutsDone := make(chan struct{})
	go func() {
		defer close(cutsDone)
		for i := 0; i < 40; i++ {
			select {
			case <-stopCuts:
				return
			case <-time.After(time.Duration(5+i%7*3) * time.Millisecond):
			}
			proxy.cut()
		}
	}()
	for w := 0; w < writers; w++ {
		wrng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < steps; i++ {
				k := "k" + strconv.Itoa(wrng.IntN(20))
				var err error
				val := func() map[string]any {
					m := map[string]any{"i": int64(i), "w": int64(w)}
					switch wrng.IntN(8) {
					case 0: // no n: sorts last
					case 1:
						m["n"] = "s" + strconv.Itoa(wrng.IntN(3))
					case 2:
						m["n"] = float64(wrng.IntN(10)) + 0.5
					default:
						m["n"] = int64(wrng.IntN(10))
					}
					return m
				}
				switch r := wrng.IntN(20); {
				case r < 10:
					err = writer.Put(ctxT(t), mapName, k, val())
				case r < 12:
					err = writer.Batch(ctxT(t), Op{Map: mapName, Key: k, Value: val(), TTL: time.Duration(20+wrng.IntN(200)) * time.Millisecond})
				case r < 15:
					err = writer.Batch(ctxT(t), Op{Map: mapName, Key: k, Value: val()},
						Op{Map: mapName, Key: "k" + strconv.Itoa(wrng.IntN(12)), Remove: true},
						Op{Map: mapName, Key: "k" + strconv.Itoa(wrng.IntN(12)), Value: val()})
				default:
					err = writer.Remove(ctxT(t), mapName, k)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Subscriptions opened and closed meanwhile, on the connection cut
	// again and again: nothing is delivered after Close.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 30; i++ {
			s, err := reader.Subscribe(ctxT(t), mapName, queries["top3"])
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				select {
				case <-s.Updates:
				case <-time.After(time.Millisecond):
				}
			}
			_ = s.Close()
			for range s.Updates {
			}
			if err := s.Err(); err != nil {
				t.Errorf("churned subscription: %v", err)
			}
		}
	}()
	wg.Wait()
	close(stopCuts)
	<-cutsDone

	fresh := dial(t, srvURL, testOptions(t))
	for name, q := range queries {
		deadline := time.Now().Add(waitFor)
		for {
			// Asked again each time: an expiring record the fresh query
			// finds can expire before the subscriber is compared with it.
			fs, err := fresh.Subscribe(ctxT(t), mapName, q)
			if err != nil {
				t.Fatal(err)
			}
			want := resultMap(fs.Initial)
			_ = fs.Close()
			got := views[name].snapshot()
			if reflect.DeepEqual(got, want) {
				break
			}
			if err := subs[name].Err(); err != nil {
				t.Fatalf("query %s closed: %v", name, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("query %s: the subscriber holds\n%v\na fresh query finds\n%v", name, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for name, v := range views {
		v.mu.Lock()
		t.Logf("query %s: %d resets", name, v.resets)
		v.mu.Unlock()
	}
	for _, s := range subs {
		_ = s.Close()
	}
	for _, v := range views {
		<-v.done
	}
}
