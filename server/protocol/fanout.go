package protocol

import (
	"errors"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// feedLoop is the Server's one reader of the store's change feed. For each
// commit it sends SERVER_EVENT to every connection holding a live query on
// a changed map (except the connection that wrote the change), updates the
// live queries (QUERY_UPDATE) and relays GC_PRUNE to every client (held
// back while its writes are pending, see offerPrune; those connecting
// later get it at their first sync, see sendPruneOnce). It never
// blocks on a client: sends only enqueue, and a full queue disconnects that
// client.
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

// mapFanout is who hears about one map's changes in one commit.
type mapFanout struct {
	subs  []*subscription
	conns []*conn
}

func (s *Server) dispatch(cm *store.Commit) {
	if cm.PruneBefore != nil {
		s.broadcastPrune(*cm.PruneBefore)
	}
	var fan map[string]*mapFanout
	s.mu.RLock()
	if len(s.byMap) > 0 {
		for i := range cm.Changes {
			name := cm.Changes[i].Map
			subs := s.byMap[name]
			if len(subs) == 0 {
				continue
			}
			if fan == nil {
				fan = map[string]*mapFanout{}
			}
			if fan[name] != nil {
				continue
			}
			f := &mapFanout{}
			seen := map[*conn]bool{}
			for sub := range subs {
				f.subs = append(f.subs, sub)
				if !seen[sub.c] {
					seen[sub.c] = true
					f.conns = append(f.conns, sub.c)
				}
			}
			fan[name] = f
		}
	}
	s.mu.RUnlock()
	if fan == nil {
		return
	}
	for i := range cm.Changes {
		ch := &cm.Changes[i]
		f := fan[ch.Map]
		if f == nil {
			continue
		}
		if ch.Kind == store.ChangeORRemove && ch.Tag == "" {
			// One change for the tags one op removed: an event each.
			for _, tag := range ch.Tags {
				s.sendEvent(f, ch, &wire.ServerEvent{MapName: ch.Map, Key: ch.Key, EventType: wire.EventORRemove, ORTag: tag})
			}
		} else if ev := serverEvent(ch); ev != nil {
			s.sendEvent(f, ch, ev)
		}
		for _, sub := range f.subs {
			sub.onChange(ch)
		}
	}
}

// sendEvent sends a change's SERVER_EVENT to the connections of its map
// but the change's writer, encoded once.
func (s *Server) sendEvent(f *mapFanout, ch *store.Change, ev *wire.ServerEvent) {
	var b []byte
	for _, c := range f.conns {
		if c.id == ch.Origin {
			continue
		}
		if b == nil {
			var err error
			if b, err = wire.Encode(wire.OmitAbsentORTTL(ev)); err != nil {
				s.log.Error("cannot encode an event", "map", ch.Map, "error", err)
				return
			}
		}
		c.send(b)
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
		if c.authed.Load() {
			c.offerPrune(ts, b)
		}
	}
}
