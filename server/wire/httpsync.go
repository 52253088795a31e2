package wire

// HTTPSyncRequest is the MsgPack body of POST /sync. It has no "type".
// Nil slices are absent on the wire; empty non-nil slices are written as [].
// TopGun's server processes Operations and Queries and ignores SyncMaps and
// Searches (kept here as raw values).
type HTTPSyncRequest struct {
	ClientID   string
	ClientHLC  Timestamp
	Operations []ClientOp
	SyncMaps   []SyncMapEntry
	Queries    []HTTPQuery
	Searches   []any
}

// SyncMapEntry asks for the deltas of one map since a timestamp.
type SyncMapEntry struct {
	MapName           string
	LastSyncTimestamp Timestamp
}

// HTTPQuery is a one-shot query in POST /sync. TopGun uses Filter as an
// equality where-clause when it is a map, else matches everything.
type HTTPQuery struct {
	QueryID string
	MapName string
	Filter  any
	Limit   *uint32
	Offset  *uint32
	Cursor  string // "" when absent
}

// HTTPSyncResponse is the MsgPack body answering POST /sync. TopGun never
// fills Deltas or SearchResults (kept as raw values).
type HTTPSyncResponse struct {
	ServerHLC     Timestamp
	Ack           *HTTPSyncAck
	Deltas        []MapDelta
	QueryResults  []HTTPQueryResult
	SearchResults []any
	Errors        []HTTPSyncError
}

// HTTPSyncAck acknowledges the request's operations.
type HTTPSyncAck struct {
	LastID  string
	Results []OpResult // nil when absent
}

// MapDelta lists changed records of one map.
type MapDelta struct {
	MapName             string
	Records             []DeltaRecord
	ServerSyncTimestamp Timestamp
}

// DeltaRecord is one changed record; EventType is PUT or REMOVE.
type DeltaRecord struct {
	Key       string
	Record    LWWRecord
	EventType EventType
}

// HTTPQueryResult answers one HTTPQuery: values only, without keys.
type HTTPQueryResult struct {
	QueryID    string
	Results    []any
	HasMore    *bool
	NextCursor string // "" when absent
}

// HTTPSyncError reports a failure. Context, when set, names the operation
// the server refused for good; without it the error is batch-level and the
// batch may be retried.
type HTTPSyncError struct {
	Code    uint32
	Message string
	Context string // "" when absent
}

// DecodeHTTPSyncRequest decodes a POST /sync body with DefaultLimits. An
// empty body is a default (empty) request, as on TopGun's server.
func DecodeHTTPSyncRequest(b []byte) (*HTTPSyncRequest, error) {
	return DefaultLimits().DecodeHTTPSyncRequest(b)
}

// DecodeHTTPSyncRequest decodes a POST /sync body.
func (l Limits) DecodeHTTPSyncRequest(b []byte) (*HTTPSyncRequest, error) {
	req := &HTTPSyncRequest{}
	if len(b) == 0 {
		return req, nil
	}
	err := l.decodeStandalone(b, func(d *decoder) error {
		var have uint8
		err := d.readStruct(func(key []byte) error {
			var err error
			switch string(key) {
			case "clientId":
				req.ClientID, err = d.str()
				have |= 1
			case "clientHlc":
				req.ClientHLC, err = d.timestamp()
				have |= 2
			case "operations":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				req.Operations, err = d.clientOps()
			case "syncMaps":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				req.SyncMaps = []SyncMapEntry{}
				_, err = d.readArray(false, func(i, n int) error {
					var s SyncMapEntry
					var h uint8
					err := d.readStruct(func(key []byte) error {
						var err error
						switch string(key) {
						case "mapName":
							s.MapName, err = d.str()
							h |= 1
						case "lastSyncTimestamp":
							s.LastSyncTimestamp, err = d.timestamp()
							h |= 2
						default:
							return d.skip()
						}
						return err
					})
					req.SyncMaps = append(req.SyncMaps, s)
					return required(err, h, "mapName", "lastSyncTimestamp")
				})
			case "queries":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				req.Queries = []HTTPQuery{}
				_, err = d.readArray(false, func(i, n int) error {
					q, err := d.httpQuery()
					req.Queries = append(req.Queries, q)
					return err
				})
			case "searches":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				req.Searches = []any{}
				_, err = d.readArray(false, func(i, n int) error {
					v, err := d.value()
					req.Searches = append(req.Searches, v)
					return err
				})
			default:
				return d.skip()
			}
			return err
		})
		return required(err, have, "clientId", "clientHlc")
	})
	if err != nil {
		return nil, toDecodeError("HTTP_SYNC_REQUEST", err)
	}
	return req, nil
}

func (d *decoder) httpQuery() (HTTPQuery, error) {
	var q HTTPQuery
	var have uint8
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "queryId":
			q.QueryID, err = d.str()
			have |= 1
		case "mapName":
			q.MapName, err = d.str()
			have |= 2
		case "filter":
			q.Filter, err = d.value()
		case "limit":
			q.Limit, err = d.optU32()
		case "offset":
			q.Offset, err = d.optU32()
		case "cursor":
			q.Cursor, _, err = d.optStr()
		default:
			return d.skip()
		}
		return err
	})
	return q, required(err, have, "queryId", "mapName")
}

// DecodeHTTPSyncResponse decodes a POST /sync response body with
// DefaultLimits.
func DecodeHTTPSyncResponse(b []byte) (*HTTPSyncResponse, error) {
	return DefaultLimits().DecodeHTTPSyncResponse(b)
}

// DecodeHTTPSyncResponse decodes a POST /sync response body.
func (l Limits) DecodeHTTPSyncResponse(b []byte) (*HTTPSyncResponse, error) {
	resp := &HTTPSyncResponse{}
	err := l.decodeStandalone(b, func(d *decoder) error {
		var have uint8
		err := d.readStruct(func(key []byte) error {
			var err error
			switch string(key) {
			case "serverHlc":
				resp.ServerHLC, err = d.timestamp()
				have |= 1
			case "ack":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				ack := &HTTPSyncAck{}
				var h uint8
				err = d.readStruct(func(key []byte) error {
					var err error
					switch string(key) {
					case "lastId":
						ack.LastID, err = d.str()
						h |= 1
					case "results":
						if d.isNil() {
							_ = d.d.DecodeNil()
							return nil
						}
						ack.Results, err = d.opResults()
					default:
						return d.skip()
					}
					return err
				})
				err = required(err, h, "lastId")
				resp.Ack = ack
			case "deltas":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				resp.Deltas = []MapDelta{}
				_, err = d.readArray(false, func(i, n int) error {
					md, err := d.mapDelta()
					resp.Deltas = append(resp.Deltas, md)
					return err
				})
			case "queryResults":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				resp.QueryResults = []HTTPQueryResult{}
				_, err = d.readArray(false, func(i, n int) error {
					qr, err := d.httpQueryResult()
					resp.QueryResults = append(resp.QueryResults, qr)
					return err
				})
			case "searchResults":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				resp.SearchResults = []any{}
				_, err = d.readArray(false, func(i, n int) error {
					v, err := d.value()
					resp.SearchResults = append(resp.SearchResults, v)
					return err
				})
			case "errors":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				resp.Errors = []HTTPSyncError{}
				_, err = d.readArray(false, func(i, n int) error {
					var se HTTPSyncError
					var h uint8
					err := d.readStruct(func(key []byte) error {
						var err error
						switch string(key) {
						case "code":
							se.Code, err = d.u32()
							h |= 1
						case "message":
							se.Message, err = d.str()
							h |= 2
						case "context":
							se.Context, _, err = d.optStr()
						default:
							return d.skip()
						}
						return err
					})
					resp.Errors = append(resp.Errors, se)
					return required(err, h, "code", "message")
				})
			default:
				return d.skip()
			}
			return err
		})
		return required(err, have, "serverHlc")
	})
	if err != nil {
		return nil, toDecodeError("HTTP_SYNC_RESPONSE", err)
	}
	return resp, nil
}

func (d *decoder) mapDelta() (MapDelta, error) {
	var md MapDelta
	var have uint8
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "mapName":
			md.MapName, err = d.str()
			have |= 1
		case "records":
			have |= 2
			md.Records = []DeltaRecord{}
			_, err = d.readArray(false, func(i, n int) error {
				var dr DeltaRecord
				var h uint8
				err := d.readStruct(func(key []byte) error {
					var err error
					switch string(key) {
					case "key":
						dr.Key, err = d.str()
						h |= 1
					case "record":
						dr.Record, err = d.lwwRecord(false)
						h |= 2
					case "eventType":
						var s string
						s, err = d.str()
						if err == nil && s != string(EventPut) && s != string(EventRemove) {
							err = errMalformed("delta event type must be PUT or REMOVE, got " + quote(s))
						}
						dr.EventType = EventType(s)
						h |= 4
					default:
						return d.skip()
					}
					return err
				})
				md.Records = append(md.Records, dr)
				return required(err, h, "key", "record", "eventType")
			})
		case "serverSyncTimestamp":
			md.ServerSyncTimestamp, err = d.timestamp()
			have |= 4
		default:
			return d.skip()
		}
		return err
	})
	return md, required(err, have, "mapName", "records", "serverSyncTimestamp")
}

func (d *decoder) httpQueryResult() (HTTPQueryResult, error) {
	var qr HTTPQueryResult
	var have uint8
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "queryId":
			qr.QueryID, err = d.str()
			have |= 1
		case "results":
			have |= 2
			qr.Results = []any{}
			_, err = d.readArray(false, func(i, n int) error {
				v, err := d.value()
				qr.Results = append(qr.Results, v)
				return err
			})
		case "hasMore":
			if d.isNil() {
				_ = d.d.DecodeNil()
				return nil
			}
			var b bool
			b, err = d.boolean()
			qr.HasMore = &b
		case "nextCursor":
			qr.NextCursor, _, err = d.optStr()
		default:
			return d.skip()
		}
		return err
	})
	return qr, required(err, have, "queryId", "results")
}

// decodeStandalone runs the structural pre-check, then fn.
func (l Limits) decodeStandalone(b []byte, fn func(d *decoder) error) error {
	if len(b) > l.MaxMessageBytes {
		return errTooLarge("body of " + itoa(len(b)) + " bytes exceeds the limit of " + itoa(l.MaxMessageBytes))
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	d := newDecoder(b, l.MaxDepth, l.maxDecoded())
	defer putDecoder(d)
	if err := d.skip(); err != nil {
		return err
	}
	if d.remaining() != 0 {
		return errMalformed(itoa(d.remaining()) + " trailing bytes after the body")
	}
	d.reset()
	return fn(d)
}

// EncodeHTTPSyncRequest encodes a POST /sync body.
func EncodeHTTPSyncRequest(r *HTTPSyncRequest) ([]byte, error) {
	e := getEncoder(DefaultMaxDepth)
	defer putEncoder(e)
	e.mapLen(2 + count(r.Operations != nil, r.SyncMaps != nil, r.Queries != nil, r.Searches != nil))
	e.kv("clientId", r.ClientID)
	e.str("clientHlc")
	e.timestamp(r.ClientHLC)
	if r.Operations != nil {
		e.str("operations")
		e.clientOps(r.Operations)
	}
	if r.SyncMaps != nil {
		e.str("syncMaps")
		e.arrayLen(len(r.SyncMaps))
		for _, s := range r.SyncMaps {
			e.mapLen(2)
			e.kv("mapName", s.MapName)
			e.str("lastSyncTimestamp")
			e.timestamp(s.LastSyncTimestamp)
		}
	}
	if r.Queries != nil {
		e.str("queries")
		e.arrayLen(len(r.Queries))
		for _, q := range r.Queries {
			e.mapLen(3 + count(q.Limit != nil, q.Offset != nil, q.Cursor != ""))
			e.kv("queryId", q.QueryID)
			e.kv("mapName", q.MapName)
			e.str("filter")
			e.value(q.Filter)
			if q.Limit != nil {
				e.str("limit")
				e.uint(uint64(*q.Limit))
			}
			if q.Offset != nil {
				e.str("offset")
				e.uint(uint64(*q.Offset))
			}
			if q.Cursor != "" {
				e.kv("cursor", q.Cursor)
			}
		}
	}
	if r.Searches != nil {
		e.str("searches")
		e.value(r.Searches)
	}
	if e.err != nil {
		return nil, &EncodeError{Type: "HTTP_SYNC_REQUEST", Reason: e.err.Error()}
	}
	return e.bytes(), nil
}

// EncodeHTTPSyncResponse encodes a POST /sync response body.
func EncodeHTTPSyncResponse(r *HTTPSyncResponse) ([]byte, error) {
	e := getEncoder(DefaultMaxDepth)
	defer putEncoder(e)
	e.mapLen(1 + count(r.Ack != nil, r.Deltas != nil, r.QueryResults != nil, r.SearchResults != nil, r.Errors != nil))
	e.str("serverHlc")
	e.timestamp(r.ServerHLC)
	if r.Ack != nil {
		e.str("ack")
		e.mapLen(1 + count(r.Ack.Results != nil))
		e.kv("lastId", r.Ack.LastID)
		if r.Ack.Results != nil {
			e.str("results")
			e.opResults(r.Ack.Results)
		}
	}
	if r.Deltas != nil {
		e.str("deltas")
		e.arrayLen(len(r.Deltas))
		for i := range r.Deltas {
			md := &r.Deltas[i]
			e.mapLen(3)
			e.kv("mapName", md.MapName)
			e.str("records")
			e.arrayLen(len(md.Records))
			for j := range md.Records {
				dr := &md.Records[j]
				e.mapLen(3)
				e.kv("key", dr.Key)
				e.str("record")
				e.lwwRecord(&dr.Record)
				e.kv("eventType", string(dr.EventType))
			}
			e.str("serverSyncTimestamp")
			e.timestamp(md.ServerSyncTimestamp)
		}
	}
	if r.QueryResults != nil {
		e.str("queryResults")
		e.arrayLen(len(r.QueryResults))
		for _, qr := range r.QueryResults {
			e.mapLen(2 + count(qr.HasMore != nil, qr.NextCursor != ""))
			e.kv("queryId", qr.QueryID)
			e.str("results")
			if qr.Results == nil {
				e.arrayLen(0)
			} else {
				e.value(qr.Results)
			}
			if qr.HasMore != nil {
				e.str("hasMore")
				e.boolean(*qr.HasMore)
			}
			if qr.NextCursor != "" {
				e.kv("nextCursor", qr.NextCursor)
			}
		}
	}
	if r.SearchResults != nil {
		e.str("searchResults")
		e.value(r.SearchResults)
	}
	if r.Errors != nil {
		e.str("errors")
		e.arrayLen(len(r.Errors))
		for _, se := range r.Errors {
			e.mapLen(2 + count(se.Context != ""))
			e.str("code")
			e.uint(uint64(se.Code))
			e.kv("message", se.Message)
			if se.Context != "" {
				e.kv("context", se.Context)
			}
		}
	}
	if e.err != nil {
		return nil, &EncodeError{Type: "HTTP_SYNC_RESPONSE", Reason: e.err.Error()}
	}
	return e.bytes(), nil
}
