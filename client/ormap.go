package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// ORAdd adds value to the entries of key in an OR-Map under a new tag and
// waits for the ack. Adds of other clients to the key are kept beside it
// (an OR set, not last-write-wins); the entry lives until an ORRemove of
// its tag, or until ttl when ttl is positive. It returns the tag, which
// is also the entry's in SERVER_EVENTs and ORMAP sync. It is queued and
// re-sent as Put is (a re-sent add is idempotent), but never superseded:
// every add and remove is replayed until acknowledged. This project's
// server keeps the client's tag; TopGun's tags the entry from its own
// clock, so there the returned tag is not the entry's (read it from the
// OR_ADD event or ORGet) and a re-sent add adds again.
func (c *Client) ORAdd(ctx context.Context, mapName, key string, value any, ttl time.Duration) (string, error) {
	tag := c.NewTag()
	return tag, c.Batch(ctx, Op{Map: mapName, Key: key, Value: value, TTL: ttl, OR: true, Tag: tag})
}

// ORRemove removes the entry tagged tag from key of an OR-Map and waits
// for the ack. The tag is remembered as removed (remove wins), so an add
// of it that arrives later is ignored; removing a tag the server has not
// seen is not an error.
func (c *Client) ORRemove(ctx context.Context, mapName, key, tag string) error {
	return c.Batch(ctx, Op{Map: mapName, Key: key, Remove: true, OR: true, Tag: tag})
}

// NewTag returns a tag for an OR add no other add has: the text form of a
// fresh timestamp of the client's clock, unique per node id.
func (c *Client) NewTag() string { return c.hlc.Now().String() }

// ORGet reads keys of an OR-Map (ORMAP_DIFF_REQUEST, the read TopGun's
// client makes when it syncs) and returns one entry per distinct key, in
// the order named: its live records (entries whose TTL has run out by
// this client's clock are left out) and its tombstones (the tags
// removed). A key that holds nothing, or an LWW record, comes back with
// no records. It needs a live connection (ErrNotConnected) and fails with
// ErrDisconnected when the connection drops before the answer; a read the
// server refuses (a map it reserves, a failed read) fails with an
// *ORGetError carrying the server's ERROR.
func (c *Client) ORGet(ctx context.Context, mapName string, keys ...string) ([]wire.ORMapEntry, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if err := c.lockSend(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	cn := c.conn
	switch {
	case c.state == StateClosed:
		c.mu.Unlock()
		c.unlockSend()
		return nil, c.err
	case cn == nil:
		c.mu.Unlock()
		c.unlockSend()
		return nil, ErrNotConnected
	}
	// Queued before the request goes out, under the send lock: the answers
	// come in the order of the requests, which is the queue's.
	g := &orGet{mapName: mapName, keys: distinct(keys), named: slices.Clone(keys), res: make(chan orGetResult, 1)}
	c.orGets = append(c.orGets, g)
	c.mu.Unlock()
	// Checked as writes are: the server would refuse a request over its
	// limits with an ERROR that does not name it.
	b, err := c.opts.Limits.Encode(&wire.ORMapDiffRequest{MapName: mapName, Keys: keys})
	if err == nil {
		err = c.checkWriteFrame(b)
	}
	if err == nil {
		// A write cut short dropped the connection; its error (a
		// deadline of WriteTimeout's, say) is not the caller's ctx's.
		if err = c.write(ctx, cn, b); err != nil && ctx.Err() == nil {
			err = c.sendFailed(err)
		}
	}
	if err != nil {
		// Not sent (or cut short, which drops the connection): no
		// answer will come for it.
		c.mu.Lock()
		if i := len(c.orGets) - 1; i >= 0 && c.orGets[i] == g {
			c.orGets = c.orGets[:i]
		}
		c.mu.Unlock()
	}
	c.unlockSend()
	if err != nil {
		return nil, err
	}
	select {
	case r := <-g.res:
		if r.err != nil {
			return nil, r.err
		}
		return liveEntries(firstOfEach(r.entries), time.Now()), nil
	case <-ctx.Done():
		// g stays queued: its answer, when it comes, is dropped.
		return nil, ctx.Err()
	}
}

// ORGetError is the server's refusal of an ORGet (an ERROR answering its
// ORMAP_DIFF_REQUEST).
type ORGetError struct {
	Code    uint32
	Message string
}

func (e *ORGetError) Error() string {
	return fmt.Sprintf("client: the server refused to read the OR-Map keys: %d %s", e.Code, e.Message)
}

// orGet is an ORMAP_DIFF_REQUEST waiting for its answer.
type orGet struct {
	mapName string
	keys    []string         // the distinct keys named, in order: the answer's
	named   []string         // the keys as named: TopGun's answer has an entry for each
	res     chan orGetResult // capacity 1: the answer never blocks the reader
}

type orGetResult struct {
	entries []wire.ORMapEntry
	err     error
}

// answerORGet hands an answer to the oldest ORGet waiting on this
// connection that it answers. The server answers a connection's requests
// in order, each with an ORMAP_DIFF_RESPONSE (one entry per distinct key
// named, in order; TopGun's, per key named) or an ERROR (err set, entries
// nil); ORGets ahead of the one answered got no answer and fail.
func (c *Client) answerORGet(mapName string, r orGetResult) {
	var skipped []*orGet
	var g *orGet
	c.mu.Lock()
	for i, h := range c.orGets {
		if r.err != nil || h.answeredBy(mapName, r.entries) {
			g = h
			skipped = c.orGets[:i]
			c.orGets = c.orGets[i+1:]
			break
		}
	}
	c.mu.Unlock()
	if g == nil {
		c.log.Debug("ignoring an ORMAP_DIFF_RESPONSE no ORGet waits for", "map", mapName)
		return
	}
	for _, h := range skipped {
		h.res <- orGetResult{err: fmt.Errorf("client: the server answered a later ORMAP_DIFF_REQUEST and not this one (map %q)", h.mapName)}
	}
	g.res <- r
}

func (g *orGet) answeredBy(mapName string, es []wire.ORMapEntry) bool {
	return g.mapName == mapName && (sameKeys(es, g.keys) || sameKeys(es, g.named))
}

func sameKeys(es []wire.ORMapEntry, keys []string) bool {
	if len(es) != len(keys) {
		return false
	}
	for i := range es {
		if es[i].Key != keys[i] {
			return false
		}
	}
	return true
}

// firstOfEach returns es without the entries of keys named again (TopGun's
// answer repeats them), in order.
func firstOfEach(es []wire.ORMapEntry) []wire.ORMapEntry {
	seen := make(map[string]bool, len(es))
	out := es[:0]
	for _, e := range es {
		if !seen[e.Key] {
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	return out
}

// distinct returns keys without repeats, in order.
func distinct(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// orGetError reports whether an ERROR answers an ORMAP_DIFF_REQUEST: the
// only tie the protocol gives is the message's text, which on this
// project's server starts by naming the request type. (Elsewhere in a
// message it may be a map name or key another ERROR quotes.)
func orGetError(m *wire.ErrorMessage) bool {
	for _, p := range orGetErrorPrefixes {
		if rest, ok := strings.CutPrefix(m.Message, p); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, ":")) {
			return true
		}
	}
	return false
}

// orGetErrorPrefixes are how the server's ERRORs answering an
// ORMAP_DIFF_REQUEST start: its own refusals and failures, and a request
// it could not decode.
var orGetErrorPrefixes = []string{
	"protocol: " + wire.TypeORMapDiffRequest,
	"protocol: message ignored: wire: cannot decode " + wire.TypeORMapDiffRequest,
}

// failORGets fails every waiting ORGet with err (the connection is gone).
// Caller holds mu; the sends do not block.
func (c *Client) failORGets(err error) {
	for _, g := range c.orGets {
		g.res <- orGetResult{err: err}
	}
	c.orGets = nil
}

// liveEntries leaves out of es the records expired at now: TopGun's sync
// answer keeps them, for the Merkle hashes.
func liveEntries(es []wire.ORMapEntry, now time.Time) []wire.ORMapEntry {
	ms := uint64(max(now.UnixMilli(), 0))
	for i := range es {
		rs := es[i].Records[:0:0]
		for _, r := range es[i].Records {
			if r.TTLMs == nil || *r.TTLMs == 0 || ms < r.Timestamp.Millis || ms-r.Timestamp.Millis < *r.TTLMs {
				rs = append(rs, r)
			}
		}
		es[i].Records = rs
	}
	return es
}
