package protocol

import (
	"errors"
	"slices"
	"sync"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// feedLoop is the Server's one reader of the store's change feed. For each
// commit it hands every connection holding a live query on a changed map
// its SERVER_EVENTs (but for the connection that wrote the change) and the
// changes its live queries match (QUERY_UPDATE), which the connection's
// feed worker sends and matches, and relays GC_PRUNE to every client (held
// back while its writes are pending, see offerPrune; those connecting
// later get it at their first sync, see sendPruneOnce). It never blocks on
// a client: sends only enqueue, and a full queue disconnects that client.
func (s *Server) feedLoop(sub *store.Subscription) {
	defer s.wg.Done()
	for {
		select {
		case cm, ok := <-sub.C():
			if !ok {
				if errors.Is(sub.Err(), store.ErrLagged) {
					// Commits were missed, and with them SERVER_EVENTs
					// that no re-read can rebuild: clients apply them to
					// their own copies of the maps. Every connection that
					// is sent events (one holding a live query) is closed
					// so that its client reconnects, subscribes again and
					// catches up through a Merkle sync. The feed is joined
					// again first: a query registered after the listing
					// misses nothing.
					sub = s.store.Subscribe()
					// Counted first: a client seeing its connection
					// closed finds the lag in Stats.
					s.feedLags.Add(1)
					n := s.closeQueryHolders()
					s.log.Warn("change feed fell behind; closed the connections holding live queries so that their clients sync again", "connections", n)
					continue
				}
				return // the store closed
			}
			if s.dispatchHook != nil {
				s.dispatchHook()
			}
			s.dispatch(cm)
		case <-s.stop:
			sub.Close()
			return
		}
	}
}

// closeQueryHolders closes, after what is queued for them, the connections
// holding a live query, with 1013 (try again later), and returns how many.
func (s *Server) closeQueryHolders() int {
	s.mu.RLock()
	conns := map[*conn]bool{}
	for _, m := range s.byMap {
		for sub := range m {
			conns[sub.c] = true
		}
	}
	s.mu.RUnlock()
	for c := range conns {
		c.closeGraceful(websocket.StatusTryAgainLater, "server fell behind on changes; reconnect and sync")
	}
	return len(conns)
}

// mapFanout is who hears about one map's changes in one commit: the live
// queries of each connection holding one.
type mapFanout map[*conn][]*subscription

// feedQueue is how many commits a connection's feed worker may fall
// behind before the connection is closed (as the whole feed is, see
// feedLoop).
const feedQueue = 1024

// feedItem is one commit's work for one connection's feed worker: a
// GC_PRUNE offer, or the commit's changes of the maps the connection holds
// live queries on (subs, the queries by map).
type feedItem struct {
	prune  *pruneOffer
	commit *feedCommit
	subs   map[string][]*subscription
}

type pruneOffer struct {
	ts record.Timestamp
	b  []byte
}

// feedCommit is one commit's changes of the maps with live queries, shared
// by the feed workers of every connection handed it, so that what a
// connection's backlog takes for a commit does not grow with its changes
// (an OP_BATCH commits thousands).
type feedCommit struct {
	changes []feedChange
	byMap   map[string][]int // indices in changes, in commit order
}

// feedChange is one change with its SERVER_EVENTs, encoded once for all
// (none when only its writer's connection hears of it).
type feedChange struct {
	ch     *store.Change
	events [][]byte
}

// dispatch hands one commit to the feed workers of the connections holding
// live queries on its maps, with each SERVER_EVENT encoded once for all.
func (s *Server) dispatch(cm *store.Commit) {
	if cm.PruneBefore != nil {
		s.broadcastPrune(*cm.PruneBefore)
	}
	var fan map[string]mapFanout
	s.mu.RLock()
	if len(s.byMap) > 0 {
		for i := range cm.Changes {
			name := cm.Changes[i].Map
			subs := s.byMap[name]
			if len(subs) == 0 {
				continue
			}
			if fan == nil {
				fan = map[string]mapFanout{}
			}
			if fan[name] != nil {
				continue
			}
			f := mapFanout{}
			for sub := range subs {
				f[sub.c] = append(f[sub.c], sub)
			}
			fan[name] = f
		}
	}
	s.mu.RUnlock()
	if fan == nil {
		return
	}
	fc := &feedCommit{byMap: make(map[string][]int, len(fan))}
	for i := range cm.Changes {
		ch := &cm.Changes[i]
		f := fan[ch.Map]
		if f == nil {
			continue
		}
		var events [][]byte
		heard := false // by a connection other than the writer's
		for c := range f {
			if c.id != ch.Origin {
				heard = true
				break
			}
		}
		switch {
		case !heard:
		case ch.Kind == store.ChangeORRemove && ch.Tag == "":
			// One change for the tags one op removed: an event each.
			for _, tag := range ch.Tags {
				events = s.appendEvent(events, ch, &wire.ServerEvent{MapName: ch.Map, Key: ch.Key, EventType: wire.EventORRemove, ORTag: tag})
			}
		default:
			if ev := serverEvent(ch); ev != nil {
				events = s.appendEvent(events, ch, ev)
			}
		}
		fc.byMap[ch.Map] = append(fc.byMap[ch.Map], len(fc.changes))
		fc.changes = append(fc.changes, feedChange{ch: ch, events: events})
	}
	items := map[*conn]*feedItem{}
	for name, f := range fan {
		for c, subs := range f {
			it := items[c]
			if it == nil {
				it = &feedItem{commit: fc, subs: map[string][]*subscription{}}
				items[c] = it
			}
			it.subs[name] = subs
		}
	}
	for c, it := range items {
		c.offerFeed(*it)
	}
}

// appendEvent appends a change's SERVER_EVENT, encoded.
func (s *Server) appendEvent(events [][]byte, ch *store.Change, ev *wire.ServerEvent) [][]byte {
	b, err := wire.Encode(wire.OmitAbsentORTTL(ev))
	if err != nil {
		s.log.Error("cannot encode an event", "map", ch.Map, "error", err)
		return events
	}
	return append(events, b)
}

// feedBacklog is a connection's queue of feedItems: a slice, not a
// channel of feedQueue items, so that it takes memory only while the
// connection is behind.
type feedBacklog struct {
	mu    sync.Mutex
	items []feedItem
	head  int           // items[head:] wait
	ready chan struct{} // capacity 1: signalled after a push
}

// feedKeep is the most slots an emptied feedBacklog keeps for the next
// items.
const feedKeep = 64

// push queues it, or reports false when feedQueue items already wait.
func (q *feedBacklog) push(it feedItem) bool {
	q.mu.Lock()
	ok := len(q.items)-q.head < feedQueue
	if ok {
		q.items = append(q.items, it)
	}
	q.mu.Unlock()
	if ok {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return ok
}

// pop takes the oldest item, if any.
func (q *feedBacklog) pop() (feedItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		if cap(q.items) > feedKeep {
			q.items = nil // a burst's array is not kept while caught up
		}
		return feedItem{}, false
	}
	it := q.items[q.head]
	q.items[q.head] = feedItem{} // its commit is not held any longer
	q.head++
	if q.head >= feedQueue && q.head*2 >= len(q.items) {
		// Never empty while changes keep coming: move what waits down,
		// and clear the slots it leaves, which would otherwise hold
		// their commits until overwritten.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return it, true
}

// startFeed starts the connection's feed worker, once, before its first
// live query joins the fan-out index. Called on the reader's goroutine
// (finish waits for the worker only once the reader returned).
func (c *conn) startFeed() {
	if c.feedOn.Load() {
		return
	}
	c.feed.ready = make(chan struct{}, 1)
	c.wg.Add(1)
	go c.feedWorker()
	c.feedOn.Store(true)
}

// offerFeed queues a commit's work for the feed worker, closing the
// connection when the worker is feedQueue commits behind: its client
// reconnects, subscribes again and catches up through a Merkle sync.
func (c *conn) offerFeed(it feedItem) {
	if c.closing.Load() || c.feed.push(it) {
		return
	}
	c.s.feedLags.Add(1)
	c.log.Warn("matching this connection's live queries fell behind the changes; closing it so that its client syncs again", "commits_behind", feedQueue)
	c.closeGraceful(websocket.StatusTryAgainLater, "server fell behind on changes; reconnect and sync")
}

// feedWorker sends a connection its SERVER_EVENTs and GC_PRUNEs and updates
// its live queries, in commit order.
func (c *conn) feedWorker() {
	defer c.wg.Done()
	// Once closing, nothing more is sent: what waits is not matched.
	for c.ctx.Err() == nil && !c.closing.Load() {
		it, ok := c.feed.pop()
		if !ok {
			select {
			case <-c.feed.ready:
				continue
			case <-c.ctx.Done():
				return
			}
		}
		if it.prune != nil {
			c.offerPrune(it.prune.ts, it.prune.b)
			continue
		}
		c.feedChanges(it)
	}
}

// feedChanges sends a commit's SERVER_EVENTs of the maps of it.subs (none
// of the connection's own changes) and hands the changes to the live
// queries of their maps, in commit order.
func (c *conn) feedChanges(it feedItem) {
	var order []int
	for name := range it.subs {
		if order == nil {
			order = it.commit.byMap[name] // not written to: shared
			continue
		}
		order = append(slices.Clip(order), it.commit.byMap[name]...)
	}
	if len(it.subs) > 1 {
		slices.Sort(order)
	}
	for _, i := range order {
		fch := &it.commit.changes[i]
		if fch.ch.Origin != c.id {
			for _, b := range fch.events {
				c.send(b)
			}
		}
		for _, sub := range it.subs[fch.ch.Map] {
			if c.ctx.Err() != nil {
				return
			}
			sub.onChange(fch.ch)
		}
	}
}

// serverEvent is the SERVER_EVENT announcing a change, nil when there is
// none to send. Removes and LWW expiries carry the tombstone (value nil and
// its timestamp) so clients learn of the delete; puts carry ttlMs.
func serverEvent(ch *store.Change) *wire.ServerEvent {
	ev := &wire.ServerEvent{MapName: ch.Map, Key: ch.Key}
	switch ch.Kind {
	case store.ChangePut:
		r := lwwToWire(&ch.Record, ch.TTLMs)
		ev.EventType, ev.Record = wire.EventPut, &r
	case store.ChangeRemove:
		r := lwwToWire(&ch.Record, 0)
		ev.EventType, ev.Record = wire.EventRemove, &r
	case store.ChangeORAdd:
		r := orEntryToWire(&ch.Entry)
		ev.EventType, ev.ORRecord, ev.ORTag = wire.EventORAdd, &r, ch.Tag
	case store.ChangeORRemove:
		ev.EventType, ev.ORTag = wire.EventORRemove, ch.Tag
	case store.ChangeExpired:
		if ch.Record.Kind != record.KindLWW {
			// The expired OR entries carried their ttlMs, so clients
			// already hide them.
			return nil
		}
		r := lwwToWire(&ch.Record, 0)
		ev.EventType, ev.Record = wire.EventRemove, &r
	default:
		return nil
	}
	return ev
}

// broadcastPrune offers GC_PRUNE with a tombstone cut-off to every
// authenticated connection (offerPrune), encoded once.
func (s *Server) broadcastPrune(ts record.Timestamp) {
	b, err := wire.Encode(&wire.GCPrune{OlderThan: tsToWire(ts)})
	if err != nil {
		s.log.Error("cannot encode message", "type", wire.TypeGCPrune, "error", err)
		return
	}
	s.mu.RLock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.RUnlock()
	for _, c := range conns {
		switch {
		case !c.authed.Load():
		case c.feedOn.Load():
			// After the events of the commits before it.
			c.offerFeed(feedItem{prune: &pruneOffer{ts, b}})
		default:
			c.offerPrune(ts, b)
		}
	}
}
