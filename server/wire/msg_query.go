package wire

// Type names of the query and push-event messages.
const (
	TypeQuerySub         = "QUERY_SUB"
	TypeQueryUnsub       = "QUERY_UNSUB"
	TypeQueryResp        = "QUERY_RESP"
	TypeQueryUpdate      = "QUERY_UPDATE"
	TypeServerEvent      = "SERVER_EVENT"
	TypeServerBatchEvent = "SERVER_BATCH_EVENT"
)

// QuerySub (C→S, wrapped) subscribes to a live query. TopGun answers
// QUERY_RESP with the initial results, then QUERY_UPDATE deltas.
type QuerySub struct {
	QueryID string
	MapName string
	Query   Query
	Fields  []string // projection; nil when absent
}

func (*QuerySub) Type() string  { return TypeQuerySub }
func (m *QuerySub) fields() int { return 3 + count(m.Fields != nil) }
func (m *QuerySub) body(e *encoder) {
	e.kv("queryId", m.QueryID)
	e.kv("mapName", m.MapName)
	e.str("query")
	e.query(&m.Query)
	if m.Fields != nil {
		e.str("fields")
		e.strings(m.Fields)
	}
}

// QueryUnsub (C→S, wrapped) ends a live query. There is no reply.
type QueryUnsub struct {
	QueryID string
}

func (*QueryUnsub) Type() string { return TypeQueryUnsub }
func (*QueryUnsub) fields() int  { return 1 }
func (m *QueryUnsub) body(e *encoder) {
	e.kv("queryId", m.QueryID)
}

// QueryResult is one {key, value} of a QUERY_RESP.
type QueryResult struct {
	Key   string
	Value any
}

// CursorStatus reports on a query's pagination cursor.
type CursorStatus string

// Cursor statuses.
const (
	CursorValid   CursorStatus = "valid"
	CursorExpired CursorStatus = "expired"
	CursorInvalid CursorStatus = "invalid"
	CursorNone    CursorStatus = "none"
)

// QueryResp (S→C, wrapped) carries a query's initial results.
type QueryResp struct {
	QueryID        string
	Results        []QueryResult
	NextCursor     string // "" when absent
	HasMore        *bool
	CursorStatus   CursorStatus // "" when absent
	MerkleRootHash *uint32
	Error          string // "" when absent
	Code           string // "" when absent
}

func (*QueryResp) Type() string { return TypeQueryResp }
func (m *QueryResp) fields() int {
	return 2 + count(m.NextCursor != "", m.HasMore != nil, m.CursorStatus != "",
		m.MerkleRootHash != nil, m.Error != "", m.Code != "")
}
func (m *QueryResp) body(e *encoder) {
	e.kv("queryId", m.QueryID)
	e.str("results")
	e.arrayLen(len(m.Results))
	for _, r := range m.Results {
		e.mapLen(2)
		e.kv("key", r.Key)
		e.str("value")
		e.value(r.Value)
	}
	if m.NextCursor != "" {
		e.kv("nextCursor", m.NextCursor)
	}
	if m.HasMore != nil {
		e.str("hasMore")
		e.boolean(*m.HasMore)
	}
	if m.CursorStatus != "" {
		e.kv("cursorStatus", string(m.CursorStatus))
	}
	if m.MerkleRootHash != nil {
		e.str("merkleRootHash")
		e.uint(uint64(*m.MerkleRootHash))
	}
	if m.Error != "" {
		e.kv("error", m.Error)
	}
	if m.Code != "" {
		e.kv("code", m.Code)
	}
}

// ChangeType says how a live query's result set changed.
type ChangeType string

// Change types.
const (
	Enter  ChangeType = "ENTER"
	Update ChangeType = "UPDATE"
	Leave  ChangeType = "LEAVE"
)

// QueryUpdate (S→C, wrapped) is one change of a live query's results.
// Value is nil on LEAVE and always written.
type QueryUpdate struct {
	QueryID    string
	Key        string
	Value      any
	ChangeType ChangeType
}

func (*QueryUpdate) Type() string { return TypeQueryUpdate }
func (*QueryUpdate) fields() int  { return 4 }
func (m *QueryUpdate) body(e *encoder) {
	e.kv("queryId", m.QueryID)
	e.kv("key", m.Key)
	e.str("value")
	e.value(m.Value)
	e.kv("changeType", string(m.ChangeType))
}

// EventType is the kind of a SERVER_EVENT.
type EventType string

// Event types.
const (
	EventPut      EventType = "PUT"
	EventRemove   EventType = "REMOVE"
	EventORAdd    EventType = "OR_ADD"
	EventORRemove EventType = "OR_REMOVE"
)

// ServerEvent (S→C, wrapped) pushes one change of a map to subscribers.
type ServerEvent struct {
	MapName   string
	EventType EventType
	Key       string
	Record    *LWWRecord   // PUT
	ORRecord  *ORMapRecord // OR_ADD
	ORTag     string       // OR_ADD, OR_REMOVE; "" when absent
}

func (*ServerEvent) Type() string      { return TypeServerEvent }
func (m *ServerEvent) fields() int     { return m.fieldCount() }
func (m *ServerEvent) body(e *encoder) { e.serverEventFields(m) }

func (m *ServerEvent) fieldCount() int {
	return 3 + count(m.Record != nil, m.ORRecord != nil, m.ORTag != "")
}

func (e *encoder) serverEventFields(m *ServerEvent) {
	e.kv("mapName", m.MapName)
	e.kv("eventType", string(m.EventType))
	e.kv("key", m.Key)
	if m.Record != nil {
		e.str("record")
		e.lwwRecord(m.Record)
	}
	if m.ORRecord != nil {
		e.str("orRecord")
		e.orMapRecord(m.ORRecord)
	}
	if m.ORTag != "" {
		e.kv("orTag", m.ORTag)
	}
}

// ServerBatchEvent (S→C, wrapped) pushes several events. TopGun's server
// never sends it; its TS client handles it.
type ServerBatchEvent struct {
	Events []ServerEvent
}

func (*ServerBatchEvent) Type() string { return TypeServerBatchEvent }
func (*ServerBatchEvent) fields() int  { return 1 }
func (m *ServerBatchEvent) body(e *encoder) {
	e.str("events")
	e.arrayLen(len(m.Events))
	for i := range m.Events {
		e.mapLen(m.Events[i].fieldCount())
		e.serverEventFields(&m.Events[i])
	}
}

func (d *decoder) serverEventField(m *ServerEvent, key []byte, have *uint8) error {
	var err error
	switch string(key) {
	case "mapName":
		m.MapName, err = d.str()
		*have |= 1
	case "eventType":
		var s string
		s, err = d.str()
		switch EventType(s) {
		case EventPut, EventRemove, EventORAdd, EventORRemove:
		default:
			if err == nil {
				err = errMalformed("unknown event type " + quote(s))
			}
		}
		m.EventType = EventType(s)
		*have |= 2
	case "key":
		m.Key, err = d.str()
		*have |= 4
	case "record":
		if d.isNil() {
			_ = d.d.DecodeNil()
			return nil
		}
		if err := d.charge(heapSize(costLWW, true)); err != nil {
			return err
		}
		var r LWWRecord
		r, err = d.lwwRecord(false)
		m.Record = &r
	case "orRecord":
		if d.isNil() {
			_ = d.d.DecodeNil()
			return nil
		}
		if err := d.charge(heapSize(costORRecord, true)); err != nil {
			return err
		}
		var r ORMapRecord
		r, err = d.orMapRecord(false)
		m.ORRecord = &r
	case "orTag":
		m.ORTag, _, err = d.optStr()
	default:
		return d.skip()
	}
	return err
}

func init() {
	register(TypeQuerySub, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &QuerySub{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "queryId":
				m.QueryID, err = d.str()
				have |= 1
			case "mapName":
				m.MapName, err = d.str()
				have |= 2
			case "query":
				m.Query, err = d.query()
				have |= 4
			case "fields":
				m.Fields, err = d.stringList(true)
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "queryId", "mapName", "query")
	})
	register(TypeQueryUnsub, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &QueryUnsub{}
		var have uint8
		err := field(func(key []byte) error {
			if string(key) == "queryId" {
				var err error
				m.QueryID, err = d.str()
				have |= 1
				return err
			}
			return d.skip()
		})
		return m, required(err, have, "queryId")
	})
	register(TypeQueryResp, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &QueryResp{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "queryId":
				m.QueryID, err = d.str()
				have |= 1
			case "results":
				have |= 2
				m.Results = []QueryResult{}
				_, err = d.readArray(false, func(i, n int) error {
					if i == 0 {
						if err := d.chargeSlice(n, costQueryResult); err != nil {
							return err
						}
						m.Results = make([]QueryResult, 0, n)
					}
					var r QueryResult
					var h uint8
					err := d.readStruct(func(key []byte) error {
						var err error
						switch string(key) {
						case "key":
							r.Key, err = d.str()
							h |= 1
						case "value":
							r.Value, err = d.value()
						default:
							return d.skip()
						}
						return err
					})
					m.Results = append(m.Results, r)
					return required(err, h, "key")
				})
			case "nextCursor":
				m.NextCursor, _, err = d.optStr()
			case "hasMore":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				var b bool
				b, err = d.boolean()
				m.HasMore = &b
			case "cursorStatus":
				var s string
				s, _, err = d.optStr()
				switch CursorStatus(s) {
				case "", CursorValid, CursorExpired, CursorInvalid, CursorNone:
				default:
					if err == nil {
						err = errMalformed("unknown cursor status " + quote(s))
					}
				}
				m.CursorStatus = CursorStatus(s)
			case "merkleRootHash":
				m.MerkleRootHash, err = d.optU32()
			case "error":
				m.Error, _, err = d.optStr()
			case "code":
				m.Code, _, err = d.optStr()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "queryId", "results")
	})
	register(TypeQueryUpdate, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &QueryUpdate{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "queryId":
				m.QueryID, err = d.str()
				have |= 1
			case "key":
				m.Key, err = d.str()
				have |= 2
			case "value":
				m.Value, err = d.value()
			case "changeType":
				var s string
				s, err = d.str()
				switch ChangeType(s) {
				case Enter, Update, Leave:
				default:
					if err == nil {
						err = errMalformed("unknown change type " + quote(s))
					}
				}
				m.ChangeType = ChangeType(s)
				have |= 4
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "queryId", "key", "changeType")
	})
	register(TypeServerEvent, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ServerEvent{}
		var have uint8
		err := field(func(key []byte) error { return d.serverEventField(m, key, &have) })
		return m, required(err, have, "mapName", "eventType", "key")
	})
	register(TypeServerBatchEvent, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ServerBatchEvent{}
		var have uint8
		err := field(func(key []byte) error {
			if string(key) != "events" {
				return d.skip()
			}
			have |= 1
			m.Events = []ServerEvent{}
			_, err := d.readArray(false, func(i, n int) error {
				if i == 0 {
					if err := d.chargeSlice(n, costServerEvent); err != nil {
						return err
					}
					m.Events = make([]ServerEvent, 0, n)
				}
				var ev ServerEvent
				var h uint8
				err := d.readStruct(func(key []byte) error { return d.serverEventField(&ev, key, &h) })
				m.Events = append(m.Events, ev)
				return required(err, h, "mapName", "eventType", "key")
			})
			return err
		})
		return m, required(err, have, "events")
	})
}
