package client

import "errors"

// Errors returned by the client.
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrAuthRequired: the server asked for auth and Options.Token is empty.
	ErrAuthRequired = errors.New("client: the server requires authentication; set Options.Token to a JWT")
	// ErrAuthFailed: the server answered AUTH with AUTH_FAIL (wrapped in an
	// *AuthError carrying the server's text). The client does not retry.
	ErrAuthFailed = errors.New("client: authentication failed")
	// ErrReconnectFailed: Options.MaxReconnectAttempts attempts in a row
	// failed, or reconnecting is off and the connection dropped.
	ErrReconnectFailed = errors.New("client: connection lost and not re-established")
	// ErrBacklogFull: Options.MaxPendingOps writes are already waiting for
	// an ack.
	ErrBacklogFull = errors.New("client: too many writes waiting for an ack; wait for some to finish or raise Options.MaxPendingOps")
	// ErrNotConnected: the call needs a live connection (SyncMap, ORGet,
	// Ping).
	ErrNotConnected = errors.New("client: not connected")
	// ErrDisconnected: the connection dropped while the call was waiting
	// for the server (SyncMap, ORGet, Ping). Retry after the client
	// reconnects.
	ErrDisconnected = errors.New("client: connection dropped during the call")
	// ErrSlowConsumer: a Subscription's Updates channel was full, so the
	// subscription was closed instead of stalling the connection.
	ErrSlowConsumer = errors.New("client: subscription closed because its Updates channel was not drained; raise Options.SubscriptionBuffer or read faster")
	// ErrSyncInProgress: another SyncMap of the same map is running.
	ErrSyncInProgress = errors.New("client: a sync of this map is already running")
	// ErrSyncReset: the server sent SYNC_RESET_REQUIRED during SyncMap; wipe
	// the local copy and sync again with no local records.
	ErrSyncReset = errors.New("client: the server requires a full resync of this map")
	// ErrSyncUnanswered: the server did not answer SYNC_INIT within
	// Options.SyncIdleTimeout. A server that serves the map always
	// answers it, so it refused the map (an ERROR it cannot tie to the
	// request, see Options.OnServerError) or failed; nothing was synced.
	ErrSyncUnanswered = errors.New("client: the server did not answer SYNC_INIT; it refused or failed to sync the map")
	// ErrSyncProtocol: during SyncMap the server sent a reply that breaks
	// TopGun's Merkle protocol (e.g. a bucket name that is not one hex
	// digit); the server is not TopGun-compatible.
	ErrSyncProtocol = errors.New("client: the server's sync reply breaks the Merkle protocol")
	// ErrTooLarge: a reply of the server was over Options.MaxReadBytes
	// and was dropped unread, or would have taken more than
	// Options.MaxReadDecodedBytes once decoded and was dropped before
	// taking more. The ORGet or SyncMap that waited for it
	// fails, and the subscription whose results or change it carried
	// (every one on the map, for a map event) closes, with it. Raise
	// the limit it names, or read less at once.
	ErrTooLarge = errors.New("client: a reply of the server was over Options.MaxReadBytes or Options.MaxReadDecodedBytes and was dropped")
	// ErrSuperseded: a write was not acknowledged and is no longer re-sent,
	// because a later write to the same key was acknowledged (TopGun stamps
	// writes on arrival, so re-sending it would overwrite the later one).
	// Whether it was applied before being replaced is unknown. It is
	// reported when the connection it was sent on is gone, or when it was
	// never sent.
	ErrSuperseded = errors.New("client: write not acknowledged, and not re-sent because a later write to the same key was")
	// ErrRejected: the server refused the write (OP_REJECTED, wrapped in a
	// *RejectedError carrying the server's reason). It is not re-sent.
	ErrRejected = errors.New("client: the server rejected the write")
)

// RejectedError is the server's OP_REJECTED for one write.
// errors.Is(err, ErrRejected) holds.
type RejectedError struct {
	OpID   string
	Reason string
	Code   *uint32 // nil when the server sent none
}

func (e *RejectedError) Error() string {
	msg := ErrRejected.Error() + " (op " + e.OpID + ")"
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is reports whether target is ErrRejected.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// AuthError is the server's AUTH_FAIL. errors.Is(err, ErrAuthFailed) holds.
type AuthError struct {
	Message string // the server's error text ("Authentication failed")
}

func (e *AuthError) Error() string {
	if e.Message == "" {
		return ErrAuthFailed.Error()
	}
	return ErrAuthFailed.Error() + ": " + e.Message
}

// Is reports whether target is ErrAuthFailed.
func (e *AuthError) Is(target error) bool { return target == ErrAuthFailed }
