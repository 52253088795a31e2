package client

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/wire"
)

// SyncResult is the outcome of SyncMap.
type SyncResult struct {
	// InSync is true when the server's root hash equalled the local one,
	// so nothing was exchanged beyond SYNC_INIT and SYNC_RESP_ROOT.
	InSync bool
	// LocalRoot and ServerRoot are the two root hashes compared.
	LocalRoot, ServerRoot uint32
	// Records are all records the server sent in SYNC_RESP_LEAF messages.
	Records []wire.LeafRecord
	// Newer are the received records that win over the local copy by LWW
	// (no local record, or a strictly greater timestamp): what the caller
	// should apply.
	Newer []wire.LeafRecord
	// Messages counts the frames exchanged, both directions.
	Messages int
	// BucketRequests counts the MERKLE_REQ_BUCKET messages sent.
	BucketRequests int
	// Unanswered counts bucket requests the server never answered (TopGun
	// sends nothing for a path that holds no keys).
	Unanswered int
}

// syncSession receives the sync replies for one map.
type syncSession struct {
	mu     sync.Mutex
	queue  []wire.Message
	err    error
	notify chan struct{} // capacity 1: something was queued or err set
}

func newSyncSession() *syncSession { return &syncSession{notify: make(chan struct{}, 1)} }

func (s *syncSession) push(m wire.Message) {
	s.mu.Lock()
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *syncSession) abort(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *syncSession) take() ([]wire.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q, s.err
}

func (c *Client) toSync(mapName string, m wire.Message) {
	c.mu.Lock()
	s := c.syncs[mapName]
	c.mu.Unlock()
	if s != nil {
		s.push(m)
	}
}

// SyncMap reconciles an LWW map with the server by Merkle drill-down, as
// TopGun's TS client does: SYNC_INIT; if the server's root differs from the
// root of local, MERKLE_REQ_BUCKET for the root path, then for every child
// bucket whose server hash differs from the local one, down to the leaves,
// whose records arrive in SYNC_RESP_LEAF. local maps keys to the records the
// caller already holds (their values are not hashed, only key and
// timestamp). Local-only buckets are not pushed: LWW writes reach the server
// through Put. SyncMap needs a live connection and fails with
// ErrDisconnected if it drops; only one sync per map may run at a time.
func (c *Client) SyncMap(ctx context.Context, mapName string, local map[string]wire.LWWRecord) (*SyncResult, error) {
	tree := newMerkleTree(local)
	res := &SyncResult{LocalRoot: tree.Root()}

	s := newSyncSession()
	c.mu.Lock()
	if c.state == StateClosed {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	cn := c.conn
	if cn == nil {
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	if c.syncs[mapName] != nil {
		c.mu.Unlock()
		return nil, ErrSyncInProgress
	}
	c.syncs[mapName] = s
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.syncs[mapName] == s {
			delete(c.syncs, mapName)
		}
		c.mu.Unlock()
	}()

	send := func(m wire.Message) error {
		res.Messages++
		if err := c.send(cn, m); err != nil {
			return fmt.Errorf("%w: %v", ErrDisconnected, err)
		}
		return nil
	}
	if err := send(&wire.SyncInit{MapName: mapName}); err != nil {
		return nil, err
	}
	outstanding := 1 // the root
	idle := time.NewTimer(c.opts.SyncIdleTimeout)
	defer idle.Stop()
	for outstanding > 0 {
		select {
		case <-s.notify:
		case <-idle.C:
			res.Unanswered = outstanding
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		msgs, err := s.take()
		for _, m := range msgs {
			res.Messages++
			outstanding--
			switch m := m.(type) {
			case *wire.SyncRespRoot:
				res.ServerRoot = m.RootHash
				if m.RootHash == res.LocalRoot {
					res.InSync = true
					continue
				}
				res.BucketRequests++
				outstanding++
				if err := send(&wire.MerkleReqBucket{MapName: mapName, Path: ""}); err != nil {
					return nil, err
				}
			case *wire.SyncRespBuckets:
				chars := make([]string, 0, len(m.Buckets))
				for ch := range m.Buckets {
					chars = append(chars, ch)
				}
				sort.Strings(chars)
				for _, ch := range chars {
					path := m.Path + ch
					if len(path) > merkle.Depth || nodeHash(tree, path) == m.Buckets[ch] {
						continue
					}
					res.BucketRequests++
					outstanding++
					if err := send(&wire.MerkleReqBucket{MapName: mapName, Path: path}); err != nil {
						return nil, err
					}
				}
			case *wire.SyncRespLeaf:
				for _, r := range m.Records {
					c.hlc.Update(r.Record.Timestamp)
					res.Records = append(res.Records, r)
					if l, ok := local[r.Key]; !ok || r.Record.Timestamp.Compare(l.Timestamp) > 0 {
						res.Newer = append(res.Newer, r)
					}
				}
			case *wire.SyncResetRequired:
				return res, ErrSyncReset
			}
		}
		if err != nil {
			return nil, err
		}
		if !idle.Stop() {
			select {
			case <-idle.C:
			default:
			}
		}
		idle.Reset(c.opts.SyncIdleTimeout)
	}
	return res, nil
}
