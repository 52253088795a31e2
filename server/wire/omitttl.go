package wire

// OR-Map records without a ttlMs field.
//
// Records are written with `ttlMs: nil` when they have no TTL, as TopGun's
// server writes them. TopGun's TypeScript client, however, hashes an OR-Map
// record with ":ttl=<ttlMs>" whenever ttlMs is not undefined, so a record it
// received with ttlMs nil (null in JavaScript) hashes as ":ttl=null" and its
// OR-Map Merkle root can never equal a server's that hashes the record
// without TTL. A server whose OR roots are meant to match the client's wraps
// the messages carrying OR records with OmitAbsentORTTL before encoding.

// OmitAbsentORTTL returns m so that its OR-Map records are written without a
// ttlMs field when they have none (TTLMs nil); every other field is written
// as usual. It applies to ORMAP_SYNC_RESP_LEAF, ORMAP_DIFF_RESPONSE and
// SERVER_EVENT; other messages are returned unchanged. The result shares m.
func OmitAbsentORTTL(m Message) Message {
	switch x := m.(type) {
	case *ORMapSyncRespLeaf:
		return (*orLeafOmitTTL)(x)
	case *ORMapDiffResponse:
		return (*orDiffOmitTTL)(x)
	case *ServerEvent:
		if x.ORRecord != nil {
			return (*serverEventOmitTTL)(x)
		}
	}
	return m
}

type orLeafOmitTTL ORMapSyncRespLeaf

func (*orLeafOmitTTL) Type() string  { return TypeORMapSyncRespLeaf }
func (m *orLeafOmitTTL) fields() int { return (*ORMapSyncRespLeaf)(m).fields() }
func (m *orLeafOmitTTL) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("path", m.Path)
	e.str("entries")
	e.orMapEntriesOmitTTL(m.Entries)
	if m.CoveringEpoch != nil {
		e.str("coveringEpoch")
		e.uint(*m.CoveringEpoch)
	}
}

type orDiffOmitTTL ORMapDiffResponse

func (*orDiffOmitTTL) Type() string  { return TypeORMapDiffResponse }
func (m *orDiffOmitTTL) fields() int { return (*ORMapDiffResponse)(m).fields() }
func (m *orDiffOmitTTL) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.str("entries")
	e.orMapEntriesOmitTTL(m.Entries)
	if m.CoveringEpoch != nil {
		e.str("coveringEpoch")
		e.uint(*m.CoveringEpoch)
	}
}

type serverEventOmitTTL ServerEvent

func (*serverEventOmitTTL) Type() string  { return TypeServerEvent }
func (m *serverEventOmitTTL) fields() int { return (*ServerEvent)(m).fieldCount() }
func (m *serverEventOmitTTL) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("eventType", string(m.EventType))
	e.kv("key", m.Key)
	if m.Record != nil {
		e.str("record")
		e.lwwRecord(m.Record)
	}
	if m.ORRecord != nil {
		e.str("orRecord")
		e.orMapRecordOmitTTL(m.ORRecord)
	}
	if m.ORTag != "" {
		e.kv("orTag", m.ORTag)
	}
}

func (e *encoder) orMapRecordOmitTTL(r *ORMapRecord) {
	e.mapLen(3 + count(r.TTLMs != nil))
	e.str("value")
	e.value(r.Value)
	e.str("timestamp")
	e.timestamp(r.Timestamp)
	e.kv("tag", r.Tag)
	if r.TTLMs != nil {
		e.str("ttlMs")
		e.uint(*r.TTLMs)
	}
}

func (e *encoder) orMapEntriesOmitTTL(es []ORMapEntry) {
	e.arrayLen(len(es))
	for i := range es {
		en := &es[i]
		e.mapLen(3)
		e.kv("key", en.Key)
		e.str("records")
		e.arrayLen(len(en.Records))
		for j := range en.Records {
			e.orMapRecordOmitTTL(&en.Records[j])
		}
		e.str("tombstones")
		e.strings(en.Tombstones)
	}
}
