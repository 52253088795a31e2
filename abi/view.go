package abi

import "context"

// RecordViewer is an optional interface of a Backend that lends its own
// records instead of copying them. The guest SDK uses it to encode get and
// scan responses straight from the backend's memory: inside wasm, the two
// allocations and the copy a record costs in Get are a third of the call.
//
// fn must not keep r or r.Value after it returns, and must not call the
// backend. The records and errors are those Get and Scan would return.
//
// The guest SDK uses a RecordViewer only when the plugin asks for it
// (sdk.LendRecords): a type that embeds one (say *null.Backend) and
// overrides Get or Scan still has the promoted ViewGet and ViewScan, which
// would bypass its overrides.
type RecordViewer interface {
	// ViewGet calls fn with each record Get would return, in the same order.
	ViewGet(ctx context.Context, mapName string, backup bool, keys []string, fn func(r *Record)) error
	// ViewScan calls fn with each record of the page Scan would return, in
	// the same order, and returns that page's cursor.
	ViewScan(ctx context.Context, req ScanRequest, fn func(r *Record)) (cursor []byte, err error)
}

// RecordsHeader starts a Records message of n records; Record appends one.
// With them a response is encoded from records lent by a RecordViewer.
func (e *Encoder) RecordsHeader(n int) { e.arr(n) }

// Record appends one record of a Records message (see Records).
func (e *Encoder) Record(r *Record) { e.record(r) }

// PageHeader starts a Page message of n records, to be followed by n calls
// of Record and one of PageCursor.
func (e *Encoder) PageHeader(n int) {
	e.arr(2)
	e.arr(n)
}

// PageCursor ends a Page message started by PageHeader.
func (e *Encoder) PageCursor(cursor []byte) { e.optBin(cursor) }

// AppendEncoded appends bytes another Encoder produced (records encoded
// ahead of the header that counts them).
func (e *Encoder) AppendEncoded(p []byte) { e.w.b = append(e.w.b, p...) }
