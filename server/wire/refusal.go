package wire

// One-shot requests of TopGun features this package does not model, whose
// calls in TopGun's client wait for an answer (30 s by default) and then
// fail with a timeout that does not say why. Each has a reply type whose
// `error` field makes the client fail the call at once with the server's
// reason; Refusal is that reply.
var refusable = map[string]struct{ reply, id string }{
	"SEARCH":        {"SEARCH_RESP", "requestId"},
	"SQL_QUERY":     {"SQL_QUERY_RESP", "queryId"},
	"VECTOR_SEARCH": {"VECTOR_SEARCH_RESP", "id"},
	"HYBRID_SEARCH": {"HYBRID_SEARCH_RESP", "requestId"},
}

// requestID reads the id of a refusable request from its payload, "" when
// it has none that is a string. The frame's structure was checked by
// scanType, so errors here only mean a field of another type.
func (d *decoder) requestID(field string) string {
	d.reset()
	id := ""
	_ = d.readStruct(func(key []byte) error {
		if string(key) != "payload" {
			return d.skip()
		}
		return d.readStruct(func(key []byte) error {
			if string(key) != field || id != "" {
				return d.skip()
			}
			s, err := d.str()
			id = s
			return err
		})
	})
	return id
}

// Refusal answers a one-shot request of a feature this package does not
// model (an *UnknownTypeError with a RequestID) in the request's reply
// type: no results and Error, as TopGun's server answers a request that
// fails (SQL_QUERY_RESP also carries Code FEATURE_DISABLED, which TopGun's
// client passes on as the error's code). It is encoded only: Decode
// reports its type as unknown, as it does the request's.
type Refusal struct {
	typ   string
	idKey string
	ID    string
	Error string
}

// NewRefusal returns the answer refusing the request of ut with reason, or
// false when ut is not a refusable request (see UnknownTypeError.RequestID).
func NewRefusal(ut *UnknownTypeError, reason string) (*Refusal, bool) {
	r, ok := refusable[ut.Type]
	if !ok || ut.RequestID == "" {
		return nil, false
	}
	return &Refusal{typ: r.reply, idKey: r.id, ID: ut.RequestID, Error: reason}, true
}

func (r *Refusal) Type() string { return r.typ }

// fields and body lay out each reply as TopGun's server and client do.
func (r *Refusal) fields() int {
	switch r.typ {
	case "SEARCH_RESP", "HYBRID_SEARCH_RESP":
		return 4
	}
	return 5
}

func (r *Refusal) body(e *encoder) {
	e.kv(r.idKey, r.ID)
	switch r.typ {
	case "SQL_QUERY_RESP":
		e.str("columns")
		e.arrayLen(0)
		e.str("rows")
		e.arrayLen(0)
	default:
		e.str("results")
		e.arrayLen(0)
	}
	switch r.typ {
	case "SEARCH_RESP":
		e.str("totalCount")
		e.uint(0)
	case "VECTOR_SEARCH_RESP":
		e.str("totalCandidates")
		e.uint(0)
		e.str("searchTimeMs")
		e.uint(0)
	case "HYBRID_SEARCH_RESP":
		e.str("searchTimeMs")
		e.uint(0)
	}
	e.kv("error", r.Error)
	if r.typ == "SQL_QUERY_RESP" {
		e.kv("code", "FEATURE_DISABLED")
	}
}
