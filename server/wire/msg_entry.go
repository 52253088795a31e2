package wire

import (
	"sort"
	"unsafe"
)

// Type names of the entry-processor messages. The server runs no entry
// processors; it decodes their requests only to refuse them as TopGun's
// server does (ENTRY_PROCESS_RESPONSE with success false), since TopGun's
// client waits 30 s for the answer and then fails the call with a timeout.
const (
	TypeEntryProcess              = "ENTRY_PROCESS"
	TypeEntryProcessResponse      = "ENTRY_PROCESS_RESPONSE"
	TypeEntryProcessBatch         = "ENTRY_PROCESS_BATCH"
	TypeEntryProcessBatchResponse = "ENTRY_PROCESS_BATCH_RESPONSE"
)

// EntryProcess (C→S, flat) asks to run a processor on one key.
type EntryProcess struct {
	RequestID string
	MapName   string
	Key       string
	Processor any // {name, code, args}, carried as sent
}

func (*EntryProcess) Type() string { return TypeEntryProcess }
func (m *EntryProcess) fields() int {
	return 3 + count(m.Processor != nil)
}
func (m *EntryProcess) body(e *encoder) {
	e.kv("requestId", m.RequestID)
	e.kv("mapName", m.MapName)
	e.kv("key", m.Key)
	if m.Processor != nil {
		e.str("processor")
		e.value(m.Processor)
	}
}

// EntryProcessBatch (C→S, flat) asks to run a processor on several keys.
type EntryProcessBatch struct {
	RequestID string
	MapName   string
	Keys      []string
	Processor any
}

func (*EntryProcessBatch) Type() string { return TypeEntryProcessBatch }
func (m *EntryProcessBatch) fields() int {
	return 3 + count(m.Processor != nil)
}
func (m *EntryProcessBatch) body(e *encoder) {
	e.kv("requestId", m.RequestID)
	e.kv("mapName", m.MapName)
	e.str("keys")
	e.strings(m.Keys)
	if m.Processor != nil {
		e.str("processor")
		e.value(m.Processor)
	}
}

// EntryProcessKeyResult is the outcome of a processor on one key. Result,
// NewValue (nil) and Error ("") are omitted when absent.
type EntryProcessKeyResult struct {
	Success  bool
	Result   any
	NewValue any
	Error    string
}

func (r *EntryProcessKeyResult) fields() int {
	return 1 + count(r.Result != nil, r.NewValue != nil, r.Error != "")
}

func (r *EntryProcessKeyResult) body(e *encoder) {
	e.str("success")
	e.boolean(r.Success)
	if r.Result != nil {
		e.str("result")
		e.value(r.Result)
	}
	if r.NewValue != nil {
		e.str("newValue")
		e.value(r.NewValue)
	}
	if r.Error != "" {
		e.kv("error", r.Error)
	}
}

// EntryProcessResponse (S→C, flat) answers ENTRY_PROCESS.
type EntryProcessResponse struct {
	RequestID string
	EntryProcessKeyResult
}

func (*EntryProcessResponse) Type() string  { return TypeEntryProcessResponse }
func (m *EntryProcessResponse) fields() int { return 1 + m.EntryProcessKeyResult.fields() }
func (m *EntryProcessResponse) body(e *encoder) {
	e.kv("requestId", m.RequestID)
	m.EntryProcessKeyResult.body(e)
}

// EntryProcessBatchResponse (S→C, flat) answers ENTRY_PROCESS_BATCH with
// one result per key.
type EntryProcessBatchResponse struct {
	RequestID string
	Results   map[string]EntryProcessKeyResult
}

func (*EntryProcessBatchResponse) Type() string { return TypeEntryProcessBatchResponse }
func (*EntryProcessBatchResponse) fields() int  { return 2 }
func (m *EntryProcessBatchResponse) body(e *encoder) {
	e.kv("requestId", m.RequestID)
	e.str("results")
	keys := make([]string, 0, len(m.Results))
	for k := range m.Results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.mapLen(len(keys))
	for _, k := range keys {
		r := m.Results[k]
		e.str(k)
		e.mapLen(r.fields())
		r.body(e)
	}
}

func (d *decoder) entryKeyResultField(r *EntryProcessKeyResult, key []byte, have *uint8) error {
	var err error
	switch string(key) {
	case "success":
		r.Success, err = d.boolean()
		*have |= 2
	case "result":
		r.Result, err = d.value()
	case "newValue":
		r.NewValue, err = d.value()
	case "error":
		r.Error, _, err = d.optStr()
	default:
		return d.skip()
	}
	return err
}

func init() {
	register(TypeEntryProcess, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &EntryProcess{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "requestId":
				m.RequestID, err = d.str()
				have |= 1
			case "mapName":
				m.MapName, _, err = d.optStr()
			case "key":
				m.Key, _, err = d.optStr()
			case "processor":
				m.Processor, err = d.value()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "requestId")
	})
	register(TypeEntryProcessBatch, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &EntryProcessBatch{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "requestId":
				m.RequestID, err = d.str()
				have |= 1
			case "mapName":
				m.MapName, _, err = d.optStr()
			case "keys":
				m.Keys, err = d.stringList(true)
			case "processor":
				m.Processor, err = d.value()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "requestId")
	})
	register(TypeEntryProcessResponse, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &EntryProcessResponse{}
		var have uint8
		err := field(func(key []byte) error {
			if string(key) == "requestId" {
				var err error
				m.RequestID, err = d.str()
				have |= 1
				return err
			}
			return d.entryKeyResultField(&m.EntryProcessKeyResult, key, &have)
		})
		return m, required(err, have, "requestId", "success")
	})
	register(TypeEntryProcessBatchResponse, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &EntryProcessBatchResponse{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "requestId":
				m.RequestID, err = d.str()
				have |= 1
			case "results":
				have |= 2
				m.Results = map[string]EntryProcessKeyResult{}
				err = d.readStruct(func(k []byte) error {
					if err := d.charge(costMapSlot + len(k) + int(unsafe.Sizeof(EntryProcessKeyResult{}))); err != nil {
						return err
					}
					var r EntryProcessKeyResult
					var rh uint8
					err := d.readStruct(func(f []byte) error { return d.entryKeyResultField(&r, f, &rh) })
					if err == nil && rh&2 == 0 {
						err = errMalformed("missing required field success")
					}
					m.Results[string(k)] = r
					return err
				})
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "requestId", "results")
	})
}
