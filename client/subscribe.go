package client

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/topgun-go/topgun/server/wire"
)

// Update is one change delivered to a Subscription. Exactly one of three
// shapes:
//
//   - a live-query change (QUERY_UPDATE): Change is ENTER, UPDATE or LEAVE,
//     Key and Value (nil on LEAVE) say what changed;
//   - a map event (SERVER_EVENT on the subscribed map): Event is set, Key
//     and Value are copied from it (Value nil for removes);
//   - a reset after a reconnect: Reset is true and Results holds the
//     query's full result set as the server re-sent it.
//
// A result set (Initial or a Reset) holds what the server read, and a
// change committed while it read may reach the subscription first, as a
// map event newer than the result set: the QUERY_UPDATEs after the result
// set bring it up to date. Keep a query's state from the result set and
// the live-query changes after it; map events alone can leave it stale.
type Update struct {
	Key     string
	Value   any
	Change  wire.ChangeType
	Event   *wire.ServerEvent
	Reset   bool
	Results []wire.QueryResult
}

// Subscription is a live query (QUERY_SUB). Read Updates until it is
// closed; then Err says why, unless it was closed by Close or Client.Close
// (a *QueryError if the server refused the query when it was re-sent after
// a reconnect).
type Subscription struct {
	c       *Client
	ID      string
	MapName string
	Query   wire.Query
	// Initial is the result set of the first QUERY_RESP.
	Initial []wire.QueryResult
	// Updates delivers changes in arrival order. It is closed by Close, by
	// Client.Close, or with ErrSlowConsumer when it fills up.
	Updates <-chan Update

	updates chan Update
	first   chan *wire.QueryResp
	done    chan struct{} // closed with updates

	mu      sync.Mutex
	gotResp bool
	closed  bool
	err     error
}

// Subscribe starts a live query on mapName (QUERY_SUB) and waits for its
// initial results. A nil query subscribes to the whole map. The
// subscription also receives the SERVER_EVENTs of the map, which TopGun
// sends to every connection with a live query on it, from the moment
// QUERY_SUB is sent: if more than Options.SubscriptionBuffer of them arrive
// before the initial results, Subscribe fails with ErrSlowConsumer (nobody
// could read them yet). After a reconnect the query is re-sent and its new
// result set arrives as a Reset update. A QUERY_SUB the server could not
// decode (over Options.Limits, a map name that is not UTF-8, a sort
// direction other than wire.Asc or wire.Desc) fails at once.
func (c *Client) Subscribe(ctx context.Context, mapName string, query *wire.Query) (*Subscription, error) {
	var q wire.Query
	if query != nil {
		q = *query
	}
	ch := make(chan Update, c.opts.SubscriptionBuffer)
	s := &Subscription{c: c, MapName: mapName, Query: q, Updates: ch, updates: ch,
		first: make(chan *wire.QueryResp, 1), done: make(chan struct{})}
	if err := c.register(ctx, s); err != nil {
		return nil, err
	}

	select {
	case resp := <-s.first:
		if resp.Error != "" {
			s.Close()
			return nil, &QueryError{QueryID: s.ID, Message: resp.Error, Code: resp.Code}
		}
		s.Initial = resp.Results
		return s, nil
	case <-s.done: // closed before its results: a slow consumer, or Client.Close
		if err := s.Err(); err != nil {
			return nil, err
		}
		return nil, c.closedErr()
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
}

// register adds s to the live queries and sends its QUERY_SUB. Holding the
// send lock, it cannot interleave with a reconnect's re-subscribe.
func (c *Client) register(ctx context.Context, s *Subscription) error {
	if err := c.lockSend(ctx); err != nil {
		return err
	}
	defer c.unlockSend()
	c.mu.Lock()
	if c.state == StateClosed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextSub++
	s.ID = "go-q-" + strconv.FormatUint(c.nextSub, 10)
	c.mu.Unlock()
	b, err := c.querySubFrame(s)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.state == StateClosed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.subs[s.ID] = s
	cn := c.conn
	c.mu.Unlock()
	if cn != nil && c.flushUnsubs(ctx, cn) == nil {
		if err := c.write(ctx, cn, b); err != nil {
			c.log.Debug("QUERY_SUB not sent; it is re-sent after reconnecting", "query_id", s.ID, "error", err)
		}
	}
	return nil
}

// querySubFrame encodes s's QUERY_SUB and decodes it as the server will.
// One the server cannot take (over the frame or decoded-size limit, too
// deep, a string that is not UTF-8, a sort direction other than asc or
// desc) gets an ERROR that names no query, never a QUERY_RESP: Subscribe
// would wait for its ctx, and every reconnect would send it again.
func (c *Client) querySubFrame(s *Subscription) ([]byte, error) {
	b, err := c.opts.Limits.Encode(s.subMessage())
	if err == nil {
		_, err = c.opts.Limits.Decode(b)
	}
	if err != nil {
		return nil, fmt.Errorf("client: the server could not take the query on %q: %w", s.MapName, err)
	}
	return b, nil
}

// QueryError is a QUERY_RESP that carries an error instead of results.
type QueryError struct {
	QueryID string
	Message string
	Code    string
}

func (e *QueryError) Error() string {
	msg := "client: the server rejected query " + e.QueryID + ": " + e.Message
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	return msg
}

func (s *Subscription) subMessage() *wire.QuerySub {
	return &wire.QuerySub{QueryID: s.ID, MapName: s.MapName, Query: s.Query}
}

// onResp handles a QUERY_RESP: the first one completes Subscribe, later
// ones (after a reconnect) become Reset updates.
func (s *Subscription) onResp(m *wire.QueryResp) {
	s.mu.Lock()
	first := !s.gotResp
	s.gotResp = true
	s.mu.Unlock()
	if first {
		s.first <- m
		return
	}
	if m.Error != "" {
		// The server refused the re-sent query: it is no longer live, and
		// its empty results are not the query's result set.
		s.c.log.Warn("the server refused a re-subscribed query; closing it", "query_id", s.ID, "error", m.Error, "code", m.Code)
		s.unsubscribe(&QueryError{QueryID: s.ID, Message: m.Error, Code: m.Code})
		return
	}
	s.deliver(Update{Reset: true, Results: m.Results})
}

// deliver queues u without ever blocking the connection; a full channel
// closes the subscription with ErrSlowConsumer.
func (s *Subscription) deliver(u Update) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	select {
	case s.updates <- u:
		s.mu.Unlock()
		return
	default:
	}
	s.mu.Unlock()
	s.c.log.Warn("subscription not drained; closing it", "query_id", s.ID, "buffer", cap(s.updates))
	s.unsubscribe(ErrSlowConsumer)
}

// Err returns why the subscription closed: nil while it is open and after
// Close or Client.Close, else what closed it (ErrSlowConsumer, a
// *QueryError, ErrTooLarge or a reply that could not be decoded, or the
// error that stopped the client).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription (QUERY_UNSUB) and closes Updates. It is
// idempotent.
func (s *Subscription) Close() error {
	s.unsubscribe(nil)
	return nil
}

func (s *Subscription) unsubscribe(err error) {
	c := s.c
	c.mu.Lock()
	_, live := c.subs[s.ID]
	delete(c.subs, s.ID)
	cn := c.conn
	// Not closed, so run is still counted in wg and Close waits for this.
	send := live && cn != nil && c.state != StateClosed
	if send {
		c.unsubs = append(c.unsubs, s.ID)
		c.wg.Add(1)
	}
	c.mu.Unlock()
	s.closeWith(err)
	if send {
		// Sent on a goroutine of its own: the send lock may be held by a
		// write blocked for up to WriteTimeout, which neither the
		// connection's reader (closing a slow consumer) nor a Subscribe
		// whose ctx ended may wait for. A Subscribe taking the send lock
		// first sends it before its QUERY_SUB.
		go func() {
			defer c.wg.Done()
			if c.lockSend(c.ctx) != nil {
				return
			}
			defer c.unlockSend()
			_ = c.flushUnsubs(c.ctx, cn)
		}()
	}
}

// flushUnsubs sends the QUERY_UNSUBs queued for cn, if it is still the
// connection; the caller holds the send lock. Those not sent stay queued
// when cn is left intact (ctx ended before a write).
func (c *Client) flushUnsubs(ctx context.Context, cn *conn) error {
	c.mu.Lock()
	if c.conn != cn {
		// Gone: the next connection never had the closed queries (and
		// install clears the queue).
		c.mu.Unlock()
		return nil
	}
	ids := c.unsubs
	c.unsubs = nil
	c.mu.Unlock()
	for i, id := range ids {
		if err := c.send(ctx, cn, &wire.QueryUnsub{QueryID: id}); err != nil {
			c.log.Debug("QUERY_UNSUB failed", "query_id", id, "error", err)
			c.mu.Lock()
			if c.conn == cn {
				c.unsubs = append(ids[i:len(ids):len(ids)], c.unsubs...)
			}
			c.mu.Unlock()
			return err
		}
	}
	return nil
}

// closeWith closes Updates once, recording err (nil for ErrClosed-free
// closes by the user).
func (s *Subscription) closeWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if err != ErrClosed {
		s.err = err
	}
	close(s.updates)
	close(s.done)
}
