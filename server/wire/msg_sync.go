package wire

// Type names of the Merkle sync messages.
const (
	TypeSyncInit             = "SYNC_INIT"
	TypeSyncRespRoot         = "SYNC_RESP_ROOT"
	TypeMerkleReqBucket      = "MERKLE_REQ_BUCKET"
	TypeSyncRespBuckets      = "SYNC_RESP_BUCKETS"
	TypeSyncRespLeaf         = "SYNC_RESP_LEAF"
	TypeSyncResetRequired    = "SYNC_RESET_REQUIRED"
	TypeGCPrune              = "GC_PRUNE"
	TypeORMapSyncInit        = "ORMAP_SYNC_INIT"
	TypeORMapSyncRespRoot    = "ORMAP_SYNC_RESP_ROOT"
	TypeORMapMerkleReqBucket = "ORMAP_MERKLE_REQ_BUCKET"
	TypeORMapSyncRespBuckets = "ORMAP_SYNC_RESP_BUCKETS"
	TypeORMapSyncRespLeaf    = "ORMAP_SYNC_RESP_LEAF"
	TypeORMapDiffRequest     = "ORMAP_DIFF_REQUEST"
	TypeORMapDiffResponse    = "ORMAP_DIFF_RESPONSE"
	TypeORMapPushDiff        = "ORMAP_PUSH_DIFF"
	TypeClientApplyAck       = "CLIENT_APPLY_ACK"
)

// SyncInit (C→S, flat) starts an LWW Merkle sync. TopGun's server reads
// only MapName; RootHash and BucketHashes are sent by some TS clients (and
// TopGun's fixture) and are kept here so they round-trip.
type SyncInit struct {
	MapName           string
	RootHash          *uint32
	BucketHashes      map[string]uint32 // nil when absent
	LastSyncTimestamp *uint64
}

func (*SyncInit) Type() string { return TypeSyncInit }
func (m *SyncInit) fields() int {
	return 1 + count(m.RootHash != nil, m.BucketHashes != nil, m.LastSyncTimestamp != nil)
}
func (m *SyncInit) body(e *encoder) {
	e.kv("mapName", m.MapName)
	if m.RootHash != nil {
		e.str("rootHash")
		e.uint(uint64(*m.RootHash))
	}
	if m.BucketHashes != nil {
		e.str("bucketHashes")
		e.hashMap(m.BucketHashes)
	}
	if m.LastSyncTimestamp != nil {
		e.str("lastSyncTimestamp")
		e.uint(*m.LastSyncTimestamp)
	}
}

// SyncRespRoot (S→C, wrapped) answers SYNC_INIT with the map's LWW root.
type SyncRespRoot struct {
	MapName   string
	RootHash  uint32
	Timestamp Timestamp
}

func (*SyncRespRoot) Type() string { return TypeSyncRespRoot }
func (*SyncRespRoot) fields() int  { return 3 }
func (m *SyncRespRoot) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.str("rootHash")
	e.uint(uint64(m.RootHash))
	e.str("timestamp")
	e.timestamp(m.Timestamp)
}

// MerkleReqBucket (C→S, wrapped) asks for the children of a trie path
// (hex characters, "" for the root).
type MerkleReqBucket struct {
	MapName string
	Path    string
}

func (*MerkleReqBucket) Type() string { return TypeMerkleReqBucket }
func (*MerkleReqBucket) fields() int  { return 2 }
func (m *MerkleReqBucket) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("path", m.Path)
}

// SyncRespBuckets (S→C, wrapped) gives the hashes of a path's children,
// keyed by one hex character.
type SyncRespBuckets struct {
	MapName string
	Path    string
	Buckets map[string]uint32
}

func (*SyncRespBuckets) Type() string { return TypeSyncRespBuckets }
func (*SyncRespBuckets) fields() int  { return 3 }
func (m *SyncRespBuckets) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("path", m.Path)
	e.str("buckets")
	e.hashMap(m.Buckets)
}

// LeafRecord is one key of a SYNC_RESP_LEAF.
type LeafRecord struct {
	Key    string
	Record LWWRecord
}

// SyncRespLeaf (S→C, wrapped) carries the current records of a leaf path.
type SyncRespLeaf struct {
	MapName string
	Path    string
	Records []LeafRecord
}

func (*SyncRespLeaf) Type() string { return TypeSyncRespLeaf }
func (*SyncRespLeaf) fields() int  { return 3 }
func (m *SyncRespLeaf) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("path", m.Path)
	e.str("records")
	e.arrayLen(len(m.Records))
	for i := range m.Records {
		e.mapLen(2)
		e.kv("key", m.Records[i].Key)
		e.str("record")
		e.lwwRecord(&m.Records[i].Record)
	}
}

// SyncResetRequired (S→C, wrapped) tells the client to wipe the map and
// sync from scratch.
type SyncResetRequired struct {
	MapName string
	Reason  string
}

func (*SyncResetRequired) Type() string { return TypeSyncResetRequired }
func (*SyncResetRequired) fields() int  { return 2 }
func (m *SyncResetRequired) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("reason", m.Reason)
}

// GCPrune (S→C, wrapped) tells clients to prune tombstones older than
// OlderThan.
type GCPrune struct {
	OlderThan Timestamp
}

func (*GCPrune) Type() string { return TypeGCPrune }
func (*GCPrune) fields() int  { return 1 }
func (m *GCPrune) body(e *encoder) {
	e.str("olderThan")
	e.timestamp(m.OlderThan)
}

// ORMapSyncInit (C→S, flat) starts an OR-Map sync. TopGun's server reads
// only MapName and ClaimedEpoch.
type ORMapSyncInit struct {
	MapName           string
	RootHash          uint32
	BucketHashes      map[string]uint32
	LastSyncTimestamp *uint64
	ClaimedEpoch      *uint64
}

func (*ORMapSyncInit) Type() string { return TypeORMapSyncInit }
func (m *ORMapSyncInit) fields() int {
	return 3 + count(m.LastSyncTimestamp != nil, m.ClaimedEpoch != nil)
}
func (m *ORMapSyncInit) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.str("rootHash")
	e.uint(uint64(m.RootHash))
	e.str("bucketHashes")
	e.hashMap(m.BucketHashes)
	if m.LastSyncTimestamp != nil {
		e.str("lastSyncTimestamp")
		e.uint(*m.LastSyncTimestamp)
	}
	if m.ClaimedEpoch != nil {
		e.str("claimedEpoch")
		e.uint(*m.ClaimedEpoch)
	}
}

// ORMapSyncRespRoot (S→C, wrapped) answers ORMAP_SYNC_INIT with the OR
// root. FullResync is written only when true.
type ORMapSyncRespRoot struct {
	MapName       string
	RootHash      uint32
	Timestamp     Timestamp
	CoveringEpoch *uint64
	FullResync    bool
}

func (*ORMapSyncRespRoot) Type() string { return TypeORMapSyncRespRoot }
func (m *ORMapSyncRespRoot) fields() int {
	return 3 + count(m.CoveringEpoch != nil, m.FullResync)
}
func (m *ORMapSyncRespRoot) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.str("rootHash")
	e.uint(uint64(m.RootHash))
	e.str("timestamp")
	e.timestamp(m.Timestamp)
	if m.CoveringEpoch != nil {
		e.str("coveringEpoch")
		e.uint(*m.CoveringEpoch)
	}
	if m.FullResync {
		e.str("fullResync")
		e.boolean(true)
	}
}

// ORMapMerkleReqBucket (C→S, wrapped) is MERKLE_REQ_BUCKET for OR-Maps.
type ORMapMerkleReqBucket struct {
	MapName string
	Path    string
}

func (*ORMapMerkleReqBucket) Type() string { return TypeORMapMerkleReqBucket }
func (*ORMapMerkleReqBucket) fields() int  { return 2 }
func (m *ORMapMerkleReqBucket) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("path", m.Path)
}

// ORMapSyncRespBuckets (S→C, wrapped) is SYNC_RESP_BUCKETS for OR-Maps.
type ORMapSyncRespBuckets struct {
	MapName string
	Path    string
	Buckets map[string]uint32
}

func (*ORMapSyncRespBuckets) Type() string { return TypeORMapSyncRespBuckets }
func (*ORMapSyncRespBuckets) fields() int  { return 3 }
func (m *ORMapSyncRespBuckets) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("path", m.Path)
	e.str("buckets")
	e.hashMap(m.Buckets)
}

// ORMapSyncRespLeaf (S→C, wrapped) carries the OR entries of a leaf path.
type ORMapSyncRespLeaf struct {
	MapName       string
	Path          string
	Entries       []ORMapEntry
	CoveringEpoch *uint64
}

func (*ORMapSyncRespLeaf) Type() string  { return TypeORMapSyncRespLeaf }
func (m *ORMapSyncRespLeaf) fields() int { return 3 + count(m.CoveringEpoch != nil) }
func (m *ORMapSyncRespLeaf) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.kv("path", m.Path)
	e.str("entries")
	e.orMapEntries(m.Entries)
	if m.CoveringEpoch != nil {
		e.str("coveringEpoch")
		e.uint(*m.CoveringEpoch)
	}
}

// ORMapDiffRequest (C→S, wrapped) asks for the OR state of some keys.
type ORMapDiffRequest struct {
	MapName string
	Keys    []string
}

func (*ORMapDiffRequest) Type() string { return TypeORMapDiffRequest }
func (*ORMapDiffRequest) fields() int  { return 2 }
func (m *ORMapDiffRequest) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.str("keys")
	e.strings(m.Keys)
}

// ORMapDiffResponse (S→C, wrapped) answers ORMAP_DIFF_REQUEST, one entry
// per requested key.
type ORMapDiffResponse struct {
	MapName       string
	Entries       []ORMapEntry
	CoveringEpoch *uint64
}

func (*ORMapDiffResponse) Type() string  { return TypeORMapDiffResponse }
func (m *ORMapDiffResponse) fields() int { return 2 + count(m.CoveringEpoch != nil) }
func (m *ORMapDiffResponse) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.str("entries")
	e.orMapEntries(m.Entries)
	if m.CoveringEpoch != nil {
		e.str("coveringEpoch")
		e.uint(*m.CoveringEpoch)
	}
}

// ORMapPushDiff (C→S, wrapped) pushes the client's OR state of some keys.
// TopGun answers OP_ACK with an internal call id.
type ORMapPushDiff struct {
	MapName string
	Entries []ORMapEntry
}

func (*ORMapPushDiff) Type() string { return TypeORMapPushDiff }
func (*ORMapPushDiff) fields() int  { return 2 }
func (m *ORMapPushDiff) body(e *encoder) {
	e.kv("mapName", m.MapName)
	e.str("entries")
	e.orMapEntries(m.Entries)
}

// ClientApplyAck (C→S, flat) confirms the client applied everything up to
// a covering epoch (tombstone GC). TopGun sends no reply.
type ClientApplyAck struct {
	Cursor uint64
}

func (*ClientApplyAck) Type() string { return TypeClientApplyAck }
func (*ClientApplyAck) fields() int  { return 1 }
func (m *ClientApplyAck) body(e *encoder) {
	e.str("cursor")
	e.uint(m.Cursor)
}

// mapPath decodes the common {mapName, path} pair.
func mapPathField(d *decoder, key []byte, mapName, path *string, have *uint8) (bool, error) {
	var err error
	switch string(key) {
	case "mapName":
		*mapName, err = d.str()
		*have |= 1
	case "path":
		*path, err = d.str()
		*have |= 2
	default:
		return false, nil
	}
	return true, err
}

func init() {
	register(TypeSyncInit, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &SyncInit{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "mapName":
				m.MapName, err = d.str()
				have |= 1
			case "rootHash":
				m.RootHash, err = d.optU32()
			case "bucketHashes":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				m.BucketHashes, err = d.hashMap()
			case "lastSyncTimestamp":
				m.LastSyncTimestamp, err = d.optU64()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName")
	})
	register(TypeSyncRespRoot, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &SyncRespRoot{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "mapName":
				m.MapName, err = d.str()
				have |= 1
			case "rootHash":
				m.RootHash, err = d.u32()
				have |= 2
			case "timestamp":
				m.Timestamp, err = d.timestamp()
				have |= 4
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName", "rootHash", "timestamp")
	})
	reqBucket := func(d *decoder, field fieldFunc) (string, string, error) {
		var mapName, path string
		var have uint8
		err := field(func(key []byte) error {
			if ok, err := mapPathField(d, key, &mapName, &path, &have); ok {
				return err
			}
			return d.skip()
		})
		return mapName, path, required(err, have, "mapName", "path")
	}
	register(TypeMerkleReqBucket, true, func(d *decoder, field fieldFunc) (Message, error) {
		mapName, path, err := reqBucket(d, field)
		return &MerkleReqBucket{MapName: mapName, Path: path}, err
	})
	register(TypeORMapMerkleReqBucket, true, func(d *decoder, field fieldFunc) (Message, error) {
		mapName, path, err := reqBucket(d, field)
		return &ORMapMerkleReqBucket{MapName: mapName, Path: path}, err
	})
	respBuckets := func(d *decoder, field fieldFunc) (string, string, map[string]uint32, error) {
		var mapName, path string
		var buckets map[string]uint32
		var have uint8
		err := field(func(key []byte) error {
			if ok, err := mapPathField(d, key, &mapName, &path, &have); ok {
				return err
			}
			if string(key) == "buckets" {
				var err error
				buckets, err = d.hashMap()
				have |= 4
				return err
			}
			return d.skip()
		})
		return mapName, path, buckets, required(err, have, "mapName", "path", "buckets")
	}
	register(TypeSyncRespBuckets, true, func(d *decoder, field fieldFunc) (Message, error) {
		mapName, path, buckets, err := respBuckets(d, field)
		return &SyncRespBuckets{MapName: mapName, Path: path, Buckets: buckets}, err
	})
	register(TypeORMapSyncRespBuckets, true, func(d *decoder, field fieldFunc) (Message, error) {
		mapName, path, buckets, err := respBuckets(d, field)
		return &ORMapSyncRespBuckets{MapName: mapName, Path: path, Buckets: buckets}, err
	})
	register(TypeSyncRespLeaf, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &SyncRespLeaf{}
		var have uint8
		err := field(func(key []byte) error {
			if ok, err := mapPathField(d, key, &m.MapName, &m.Path, &have); ok {
				return err
			}
			if string(key) != "records" {
				return d.skip()
			}
			have |= 4
			m.Records = []LeafRecord{}
			_, err := d.readArray(false, func(i, n int) error {
				if i == 0 {
					if err := d.chargeSlice(n, costLeafRecord); err != nil {
						return err
					}
					m.Records = make([]LeafRecord, 0, n)
				}
				var lr LeafRecord
				var h uint8
				err := d.readStruct(func(key []byte) error {
					var err error
					switch string(key) {
					case "key":
						lr.Key, err = d.str()
						h |= 1
					case "record":
						lr.Record, err = d.lwwRecord(false)
						h |= 2
					default:
						return d.skip()
					}
					return err
				})
				m.Records = append(m.Records, lr)
				return required(err, h, "key", "record")
			})
			return err
		})
		return m, required(err, have, "mapName", "path", "records")
	})
	register(TypeSyncResetRequired, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &SyncResetRequired{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "mapName":
				m.MapName, err = d.str()
				have |= 1
			case "reason":
				m.Reason, err = d.str()
				have |= 2
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName", "reason")
	})
	register(TypeGCPrune, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &GCPrune{}
		var have uint8
		err := field(func(key []byte) error {
			if string(key) == "olderThan" {
				var err error
				m.OlderThan, err = d.timestamp()
				have |= 1
				return err
			}
			return d.skip()
		})
		return m, required(err, have, "olderThan")
	})
	register(TypeORMapSyncInit, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ORMapSyncInit{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "mapName":
				m.MapName, err = d.str()
				have |= 1
			case "rootHash":
				m.RootHash, err = d.u32()
				have |= 2
			case "bucketHashes":
				m.BucketHashes, err = d.hashMap()
				have |= 4
			case "lastSyncTimestamp":
				m.LastSyncTimestamp, err = d.optU64()
			case "claimedEpoch":
				m.ClaimedEpoch, err = d.optU64()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName", "rootHash", "bucketHashes")
	})
	register(TypeORMapSyncRespRoot, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ORMapSyncRespRoot{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "mapName":
				m.MapName, err = d.str()
				have |= 1
			case "rootHash":
				m.RootHash, err = d.u32()
				have |= 2
			case "timestamp":
				m.Timestamp, err = d.timestamp()
				have |= 4
			case "coveringEpoch":
				m.CoveringEpoch, err = d.optU64()
			case "fullResync":
				if d.isNil() {
					_ = d.d.DecodeNil()
					return nil
				}
				m.FullResync, err = d.boolean()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName", "rootHash", "timestamp")
	})
	register(TypeORMapSyncRespLeaf, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ORMapSyncRespLeaf{}
		var have uint8
		err := field(func(key []byte) error {
			if ok, err := mapPathField(d, key, &m.MapName, &m.Path, &have); ok {
				return err
			}
			var err error
			switch string(key) {
			case "entries":
				m.Entries, err = d.orMapEntries(false)
				have |= 4
			case "coveringEpoch":
				m.CoveringEpoch, err = d.optU64()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName", "path", "entries")
	})
	register(TypeORMapDiffRequest, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ORMapDiffRequest{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "mapName":
				m.MapName, err = d.str()
				have |= 1
			case "keys":
				m.Keys, err = d.stringList(false)
				have |= 2
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName", "keys")
	})
	register(TypeORMapDiffResponse, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ORMapDiffResponse{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "mapName":
				m.MapName, err = d.str()
				have |= 1
			case "entries":
				m.Entries, err = d.orMapEntries(false)
				have |= 2
			case "coveringEpoch":
				m.CoveringEpoch, err = d.optU64()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName", "entries")
	})
	register(TypeORMapPushDiff, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ORMapPushDiff{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "mapName":
				m.MapName, err = d.str()
				have |= 1
			case "entries":
				m.Entries, err = d.orMapEntries(true)
				have |= 2
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "mapName", "entries")
	})
	register(TypeClientApplyAck, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ClientApplyAck{}
		var have uint8
		err := field(func(key []byte) error {
			if string(key) == "cursor" {
				var err error
				m.Cursor, err = d.u64()
				have |= 1
				return err
			}
			return d.skip()
		})
		return m, required(err, have, "cursor")
	})
}
