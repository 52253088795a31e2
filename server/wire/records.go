package wire

import (
	"cmp"
	"strconv"

	"github.com/topgun-go/topgun/server/record"
)

// Timestamp is a hybrid-logical-clock timestamp as it travels on the wire:
// {millis, counter, nodeId}. It has the same shape as record.Timestamp.
type Timestamp struct {
	Millis  uint64
	Counter uint32
	NodeID  string
}

// String returns TopGun's text form "millis:counter:nodeId" (also the
// OR-Map tag the server derives from a timestamp).
func (t Timestamp) String() string {
	return strconv.FormatUint(t.Millis, 10) + ":" + strconv.FormatUint(uint64(t.Counter), 10) + ":" + t.NodeID
}

// Compare orders timestamps by millis, then counter, then node id as
// TopGun's TypeScript client does (record.CompareNodeID), the order the
// server's LWW merge uses. It returns -1, 0 or +1.
func (t Timestamp) Compare(u Timestamp) int {
	if c := cmp.Compare(t.Millis, u.Millis); c != 0 {
		return c
	}
	if c := cmp.Compare(t.Counter, u.Counter); c != 0 {
		return c
	}
	return record.CompareNodeID(t.NodeID, u.NodeID)
}

func (d *decoder) timestamp() (Timestamp, error) {
	var t Timestamp
	var have uint8
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "millis":
			t.Millis, err = d.u64()
			have |= 1
		case "counter":
			t.Counter, err = d.u32()
			have |= 2
		case "nodeId":
			t.NodeID, err = d.str()
			have |= 4
		default:
			return d.skip()
		}
		return err
	})
	if err == nil {
		err = missing(have, "millis", "counter", "nodeId")
	}
	return t, err
}

func (e *encoder) timestamp(t Timestamp) {
	e.mapLen(3)
	e.str("millis")
	e.uint(t.Millis)
	e.str("counter")
	e.uint(uint64(t.Counter))
	e.kv("nodeId", t.NodeID)
}

// missing returns an error naming the first required field whose bit is not
// set in have (bit i stands for names[i]).
func missing(have uint8, names ...string) error {
	for i, n := range names {
		if have&(1<<i) == 0 {
			return errMalformed("missing required field " + n)
		}
	}
	return nil
}

// LWWRecord is a last-writer-wins record on the wire. Value is the user's
// value in the package's value model (nil for a tombstone); decoded from
// a client's write, a record.Value (see the package doc). TTLMs is the
// client's time-to-live; TopGun echoes it in SERVER_EVENT but never stores
// it, and always writes the key (`ttlMs: nil` when absent).
type LWWRecord struct {
	Value     any
	Timestamp Timestamp
	TTLMs     *uint64
}

// recordOrValue decodes a record's value: into the record.Value the
// server stores when stored (the records of a client's write, which the
// server only converts: recordValue), else into the value model (value).
func (d *decoder) recordOrValue(stored bool) (any, error) {
	if stored {
		return d.recordValue()
	}
	return d.value()
}

func (d *decoder) lwwRecord(stored bool) (LWWRecord, error) {
	var r LWWRecord
	var have uint8
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "value":
			r.Value, err = d.recordOrValue(stored)
		case "timestamp":
			r.Timestamp, err = d.timestamp()
			have |= 1
		case "ttlMs":
			r.TTLMs, err = d.optU64()
		default:
			return d.skip()
		}
		return err
	})
	if err == nil {
		err = missing(have, "timestamp")
	}
	return r, err
}

func (e *encoder) lwwRecord(r *LWWRecord) {
	e.mapLen(3)
	e.str("value")
	e.value(r.Value)
	e.str("timestamp")
	e.timestamp(r.Timestamp)
	e.str("ttlMs")
	e.optU64(r.TTLMs)
}

func (e *encoder) optU64(u *uint64) {
	if u == nil {
		e.null()
		return
	}
	e.uint(*u)
}

// ORMapRecord is one tagged entry of an observed-remove map on the wire.
// Value is as LWWRecord's.
type ORMapRecord struct {
	Value     any
	Timestamp Timestamp
	Tag       string
	TTLMs     *uint64
}

func (d *decoder) orMapRecord(stored bool) (ORMapRecord, error) {
	var r ORMapRecord
	var have uint8
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "value":
			r.Value, err = d.recordOrValue(stored)
		case "timestamp":
			r.Timestamp, err = d.timestamp()
			have |= 1
		case "tag":
			r.Tag, err = d.str()
			have |= 2
		case "ttlMs":
			r.TTLMs, err = d.optU64()
		default:
			return d.skip()
		}
		return err
	})
	if err == nil {
		err = missing(have, "timestamp", "tag")
	}
	return r, err
}

func (e *encoder) orMapRecord(r *ORMapRecord) {
	omit := e.omitAbsentTTL && r.TTLMs == nil // see OmitAbsentORTTL
	e.mapLen(4 - count(omit))
	e.str("value")
	e.value(r.Value)
	e.str("timestamp")
	e.timestamp(r.Timestamp)
	e.kv("tag", r.Tag)
	if !omit {
		e.str("ttlMs")
		e.optU64(r.TTLMs)
	}
}

// ORMapEntry is the state of one OR-Map key in sync messages: its live
// records and its observed-remove tags. Both arrays are always written.
type ORMapEntry struct {
	Key        string
	Records    []ORMapRecord
	Tombstones []string
}

func (d *decoder) orMapEntry(stored bool) (ORMapEntry, error) {
	var en ORMapEntry
	var have uint8
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "key":
			en.Key, err = d.str()
			have |= 1
		case "records":
			en.Records, err = d.orMapRecords(stored)
			have |= 2
		case "tombstones":
			en.Tombstones, err = d.stringList(false)
			have |= 4
		default:
			return d.skip()
		}
		return err
	})
	if err == nil {
		err = missing(have, "key", "records", "tombstones")
	}
	return en, err
}

func (d *decoder) orMapRecords(stored bool) ([]ORMapRecord, error) {
	out := []ORMapRecord{}
	_, err := d.readArray(false, func(i, n int) error {
		if i == 0 {
			if err := d.chargeEach(n, costORRecord); err != nil {
				return err
			}
			out = make([]ORMapRecord, 0, n)
		}
		r, err := d.orMapRecord(stored)
		out = append(out, r)
		return err
	})
	return out, err
}

func (d *decoder) orMapEntries(stored bool) ([]ORMapEntry, error) {
	out := []ORMapEntry{}
	_, err := d.readArray(false, func(i, n int) error {
		if i == 0 {
			if err := d.chargeEach(n, costOREntry); err != nil {
				return err
			}
			out = make([]ORMapEntry, 0, n)
		}
		en, err := d.orMapEntry(stored)
		out = append(out, en)
		return err
	})
	return out, err
}

func (e *encoder) orMapEntry(en *ORMapEntry) {
	e.mapLen(3)
	e.kv("key", en.Key)
	e.str("records")
	e.arrayLen(len(en.Records))
	for i := range en.Records {
		e.orMapRecord(&en.Records[i])
	}
	e.str("tombstones")
	e.strings(en.Tombstones)
}

func (e *encoder) orMapEntries(es []ORMapEntry) {
	e.arrayLen(len(es))
	for i := range es {
		e.orMapEntry(&es[i])
	}
}

// WriteConcern is the durability level a client asks for and the server
// reports. TopGun's server always answers APPLIED.
type WriteConcern string

// Write concerns (TopGun's WriteConcern enum).
const (
	FireAndForget WriteConcern = "FIRE_AND_FORGET"
	Memory        WriteConcern = "MEMORY"
	Applied       WriteConcern = "APPLIED"
	Replicated    WriteConcern = "REPLICATED"
	Persisted     WriteConcern = "PERSISTED"
)

func (d *decoder) writeConcern() (WriteConcern, error) {
	s, err := d.str()
	if err != nil {
		return "", err
	}
	// The constant, not s: each result of an OP_ACK would keep a copy.
	for _, w := range [...]WriteConcern{FireAndForget, Memory, Applied, Replicated, Persisted} {
		if WriteConcern(s) == w {
			return w, nil
		}
	}
	return "", errMalformed("unknown write concern " + quote(s) + " (want FIRE_AND_FORGET, MEMORY, APPLIED, REPLICATED or PERSISTED)")
}

// optWriteConcern decodes an optional write concern (nil gives "").
func (d *decoder) optWriteConcern() (WriteConcern, error) {
	if d.isNil() {
		_ = d.d.DecodeNil()
		return "", nil
	}
	return d.writeConcern()
}

// OpKind is what the server does with a ClientOp, decided as TopGun does.
type OpKind int

// Kinds of client operations.
const (
	OpPut      OpKind = iota // LWW put (or, when Record is absent, nothing stored but still acked)
	OpRemove                 // LWW remove: opType REMOVE or record nil
	OpORAdd                  // OR-Map add: orRecord is a record
	OpORRemove               // OR-Map remove: orTag is a string and orRecord absent
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "PUT"
	case OpRemove:
		return "REMOVE"
	case OpORAdd:
		return "OR_ADD"
	case OpORRemove:
		return "OR_REMOVE"
	}
	return "OpKind(" + strconv.Itoa(int(k)) + ")"
}

// ClientOp is one write from a client (the payload of CLIENT_OP, an element
// of OP_BATCH.ops and of POST /sync operations).
//
// TopGun distinguishes an absent record from a nil one: `record: nil` means
// remove. Record is nil in both cases; RecordNil reports the explicit nil.
// The same holds for ORRecord/ORRecordNil and ORTag/ORTagNil. Kind applies
// TopGun's rules.
type ClientOp struct {
	ID           string // op-log id; "" when absent (the ack then says "unknown")
	MapName      string
	Key          string
	OpType       string // "PUT", "REMOVE", "OR_ADD", "OR_REMOVE" or ""
	Record       *LWWRecord
	RecordNil    bool
	ORRecord     *ORMapRecord
	ORRecordNil  bool
	ORTag        *string
	ORTagNil     bool
	WriteConcern WriteConcern // "" when absent
	Timeout      *uint64
}

// Kind reports how TopGun's server treats the op, in its priority order:
// REMOVE when opType is "REMOVE" or record is nil; OR_ADD when orRecord is a
// record; OR_REMOVE when orTag is a string and orRecord is absent; PUT
// otherwise.
func (op *ClientOp) Kind() OpKind {
	switch {
	case op.OpType == "REMOVE" || op.RecordNil:
		return OpRemove
	case op.ORRecord != nil:
		return OpORAdd
	case op.ORTag != nil && !op.ORRecordNil:
		return OpORRemove
	}
	return OpPut
}

func (d *decoder) clientOpField(op *ClientOp, key []byte, have *uint8) error {
	var err error
	switch string(key) {
	case "id":
		op.ID, _, err = d.optStr()
	case "mapName":
		op.MapName, err = d.str()
		*have |= 1
	case "key":
		op.Key, err = d.str()
		*have |= 2
	case "opType":
		op.OpType, _, err = d.optStr()
	case "record":
		op.Record, op.RecordNil = nil, false
		if d.isNil() {
			_ = d.d.DecodeNil()
			op.RecordNil = true
			return nil
		}
		if err := d.charge(costLWW); err != nil {
			return err
		}
		var r LWWRecord
		r, err = d.lwwRecord(true)
		op.Record = &r
	case "orRecord":
		op.ORRecord, op.ORRecordNil = nil, false
		if d.isNil() {
			_ = d.d.DecodeNil()
			op.ORRecordNil = true
			return nil
		}
		if err := d.charge(costORRecord); err != nil {
			return err
		}
		var r ORMapRecord
		r, err = d.orMapRecord(true)
		op.ORRecord = &r
	case "orTag":
		op.ORTag, op.ORTagNil = nil, false
		if d.isNil() {
			_ = d.d.DecodeNil()
			op.ORTagNil = true
			return nil
		}
		var s string
		s, err = d.str()
		op.ORTag = &s
	case "writeConcern":
		op.WriteConcern, err = d.optWriteConcern()
	case "timeout":
		op.Timeout, err = d.optU64()
	default:
		return d.skip()
	}
	return err
}

func (d *decoder) clientOp() (ClientOp, error) {
	var op ClientOp
	var have uint8
	err := d.readStruct(func(key []byte) error { return d.clientOpField(&op, key, &have) })
	if err == nil {
		err = missing(have, "mapName", "key")
	}
	return op, err
}

func (d *decoder) clientOps() ([]ClientOp, error) {
	out := []ClientOp{}
	_, err := d.readArray(false, func(i, n int) error {
		if i == 0 {
			if err := d.chargeEach(n, costClientOp); err != nil {
				return err
			}
			out = make([]ClientOp, 0, n)
		}
		op, err := d.clientOp()
		out = append(out, op)
		return err
	})
	return out, err
}

func (e *encoder) clientOp(op *ClientOp) {
	e.mapLen(op.fieldCount())
	e.clientOpFields(op)
}

// fieldCount is the number of fields clientOpFields writes.
func (op *ClientOp) fieldCount() int {
	return 2 + count(op.ID != "", op.OpType != "",
		op.Record != nil || op.RecordNil, op.ORRecord != nil || op.ORRecordNil,
		op.ORTag != nil || op.ORTagNil, op.WriteConcern != "", op.Timeout != nil)
}

func (e *encoder) clientOps(ops []ClientOp) {
	e.arrayLen(len(ops))
	for i := range ops {
		e.clientOp(&ops[i])
	}
}

// OpResult is one per-op result in OP_ACK.results (TopGun's server never
// sends results; its TS client reads them).
type OpResult struct {
	OpID          string
	Success       bool
	AchievedLevel WriteConcern
	Error         string // "" when absent
}

func (d *decoder) opResults() ([]OpResult, error) {
	out := []OpResult{}
	_, err := d.readArray(false, func(i, n int) error {
		if i == 0 {
			if err := d.chargeSlice(n, costOpResult); err != nil {
				return err
			}
			out = make([]OpResult, 0, n)
		}
		var r OpResult
		var have uint8
		err := d.readStruct(func(key []byte) error {
			var err error
			switch string(key) {
			case "opId":
				r.OpID, err = d.str()
				have |= 1
			case "success":
				r.Success, err = d.boolean()
				have |= 2
			case "achievedLevel":
				r.AchievedLevel, err = d.writeConcern()
				have |= 4
			case "error":
				r.Error, _, err = d.optStr()
			default:
				return d.skip()
			}
			return err
		})
		if err == nil {
			err = missing(have, "opId", "success", "achievedLevel")
		}
		out = append(out, r)
		return err
	})
	return out, err
}

func (e *encoder) opResults(rs []OpResult) {
	e.arrayLen(len(rs))
	for _, r := range rs {
		e.mapLen(3 + count(r.Error != ""))
		e.kv("opId", r.OpID)
		e.str("success")
		e.boolean(r.Success)
		e.kv("achievedLevel", string(r.AchievedLevel))
		if r.Error != "" {
			e.kv("error", r.Error)
		}
	}
}
