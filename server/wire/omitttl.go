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
	case *ORMapSyncRespLeaf, *ORMapDiffResponse:
		return omitTTL{m}
	case *ServerEvent:
		if x.ORRecord != nil {
			return omitTTL{m}
		}
	}
	return m
}

// omitTTL writes its message with the encoder's omitAbsentTTL set, which
// orMapRecord reads: the message's own body does the rest.
type omitTTL struct{ Message }

func (m omitTTL) body(e *encoder) {
	e.omitAbsentTTL = true
	m.Message.body(e)
	e.omitAbsentTTL = false
}
