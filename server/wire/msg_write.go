package wire

// Type names of the write messages.
const (
	TypeClientOp   = "CLIENT_OP"
	TypeOpBatch    = "OP_BATCH"
	TypeOpAck      = "OP_ACK"
	TypeOpRejected = "OP_REJECTED"
	TypeBatch      = "BATCH"
)

// ClientOpMessage is CLIENT_OP (C→S, wrapped): one write. TopGun's server
// answers OP_ACK{lastId: op id or "unknown"} and nothing at all on failure.
type ClientOpMessage struct {
	ClientOp
}

func (*ClientOpMessage) Type() string      { return TypeClientOp }
func (m *ClientOpMessage) fields() int     { return m.ClientOp.fieldCount() }
func (m *ClientOpMessage) body(e *encoder) { e.clientOpFields(&m.ClientOp) }

// OpBatch is OP_BATCH (C→S, wrapped). TopGun answers one OP_ACK with the
// last op's id, or ERROR{500|429} when any op fails.
type OpBatch struct {
	Ops          []ClientOp
	WriteConcern WriteConcern // "" when absent
	Timeout      *uint64
}

func (*OpBatch) Type() string { return TypeOpBatch }
func (m *OpBatch) fields() int {
	return 1 + count(m.WriteConcern != "", m.Timeout != nil)
}
func (m *OpBatch) body(e *encoder) {
	e.str("ops")
	e.clientOps(m.Ops)
	if m.WriteConcern != "" {
		e.kv("writeConcern", string(m.WriteConcern))
	}
	if m.Timeout != nil {
		e.str("timeout")
		e.uint(*m.Timeout)
	}
}

// OpAck is OP_ACK (S→C, wrapped). TopGun's server sends only LastID and
// AchievedLevel APPLIED; its TS client marks every op with a numeric id ≤
// LastID synced (all ops when LastID is not numeric).
type OpAck struct {
	LastID        string
	AchievedLevel WriteConcern // "" when absent
	Results       []OpResult   // nil when absent
}

func (*OpAck) Type() string { return TypeOpAck }
func (m *OpAck) fields() int {
	return 1 + count(m.AchievedLevel != "", m.Results != nil)
}
func (m *OpAck) body(e *encoder) {
	e.kv("lastId", m.LastID)
	if m.AchievedLevel != "" {
		e.kv("achievedLevel", string(m.AchievedLevel))
	}
	if m.Results != nil {
		e.str("results")
		e.opResults(m.Results)
	}
}

// OpRejected is OP_REJECTED (S→C, wrapped). TopGun defines it but never
// sends it.
type OpRejected struct {
	OpID   string
	Reason string
	Code   *uint32
}

func (*OpRejected) Type() string  { return TypeOpRejected }
func (m *OpRejected) fields() int { return 2 + count(m.Code != nil) }
func (m *OpRejected) body(e *encoder) {
	e.kv("opId", m.OpID)
	e.kv("reason", m.Reason)
	if m.Code != nil {
		e.str("code")
		e.uint(uint64(*m.Code))
	}
}

func (e *encoder) clientOpFields(op *ClientOp) {
	if op.ID != "" {
		e.kv("id", op.ID)
	}
	e.kv("mapName", op.MapName)
	e.kv("key", op.Key)
	if op.OpType != "" {
		e.kv("opType", op.OpType)
	}
	switch {
	case op.Record != nil:
		e.str("record")
		e.lwwRecord(op.Record)
	case op.RecordNil:
		e.str("record")
		e.null()
	}
	switch {
	case op.ORRecord != nil:
		e.str("orRecord")
		e.orMapRecord(op.ORRecord)
	case op.ORRecordNil:
		e.str("orRecord")
		e.null()
	}
	switch {
	case op.ORTag != nil:
		e.kv("orTag", *op.ORTag)
	case op.ORTagNil:
		e.str("orTag")
		e.null()
	}
	if op.WriteConcern != "" {
		e.kv("writeConcern", string(op.WriteConcern))
	}
	if op.Timeout != nil {
		e.str("timeout")
		e.uint(*op.Timeout)
	}
}

func init() {
	register(TypeClientOp, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ClientOpMessage{}
		var have uint8
		err := field(func(key []byte) error { return d.clientOpField(&m.ClientOp, key, &have) })
		return m, required(err, have, "mapName", "key")
	})
	register(TypeOpBatch, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &OpBatch{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "ops":
				m.Ops, err = d.clientOps()
				have |= 1
			case "writeConcern":
				m.WriteConcern, err = d.optWriteConcern()
			case "timeout":
				m.Timeout, err = d.optU64()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "ops")
	})
	register(TypeOpAck, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &OpAck{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "lastId":
				m.LastID, err = d.str()
				have |= 1
			case "achievedLevel":
				m.AchievedLevel, err = d.optWriteConcern()
			case "results":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				m.Results, err = d.opResults()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "lastId")
	})
	register(TypeOpRejected, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &OpRejected{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "opId":
				m.OpID, err = d.str()
				have |= 1
			case "reason":
				m.Reason, err = d.str()
				have |= 2
			case "code":
				m.Code, err = d.optU32()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "opId", "reason")
	})
	register(TypeBatch, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &Batch{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "count":
				m.Count, err = d.u32()
				have |= 1
			case "data":
				m.Data, err = d.binary()
				have |= 2
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "count", "data")
	})
}
