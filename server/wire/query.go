package wire

import (
	"math"
	"sync/atomic"
)

// Query is the query of a QUERY_SUB: a filter (Predicate, else Where, else
// everything), an order, a limit and a cursor. All parts are optional; nil
// and "" mean absent. GroupBy and Aggregations are decoded and re-encoded
// but not evaluated by Match/Apply (see IsAggregate).
type Query struct {
	// Where maps a field to the value it must equal. A value that is a map
	// whose keys all start with "$" is an operator object such as
	// {"$gt": 18}; see Match.
	Where map[string]any
	// Predicate is a tree of conditions; it takes precedence over Where.
	Predicate *Predicate
	// Sort orders results, first field first.
	Sort []SortField
	// Limit caps the number of results.
	Limit *uint32
	// Cursor is an opaque pagination cursor.
	Cursor string
	// GroupBy and Aggregations form TopGun's aggregation queries.
	GroupBy      []string
	Aggregations []Aggregation

	// patterns holds the Where clause's $like/$regex patterns compiled by
	// Compile; copies of the Query share it.
	patterns map[patternKey]textMatcher
	// sets holds hash sets of the Where clause's long $in/$nin lists, built
	// by Compile; copies of the Query share it.
	sets map[listKey]*valueSet
}

// IsAggregate reports whether the query asks for grouping or aggregation,
// which this package does not evaluate.
func (q *Query) IsAggregate() bool {
	return q != nil && (len(q.GroupBy) > 0 || len(q.Aggregations) > 0)
}

// SortDirection is "asc" or "desc".
type SortDirection string

// Sort directions.
const (
	Asc  SortDirection = "asc"
	Desc SortDirection = "desc"
)

// SortField is one sort key.
type SortField struct {
	Field     string // dotted path into the value, e.g. "address.city"
	Direction SortDirection
}

// Aggregation is one aggregate of an aggregation query.
type Aggregation struct {
	Func  string // count, sum, min, max, avg
	Field string // "" when absent (count)
}

// PredicateOp is the operator of a predicate node.
type PredicateOp string

// Predicate operators, spelled as on the wire.
const (
	OpEq          PredicateOp = "eq"
	OpNeq         PredicateOp = "neq"
	OpGt          PredicateOp = "gt"
	OpGte         PredicateOp = "gte"
	OpLt          PredicateOp = "lt"
	OpLte         PredicateOp = "lte"
	OpLike        PredicateOp = "like"
	OpRegex       PredicateOp = "regex"
	OpAnd         PredicateOp = "and"
	OpOr          PredicateOp = "or"
	OpNot         PredicateOp = "not"
	OpIn          PredicateOp = "in"
	OpBetween     PredicateOp = "between"
	OpIsNull      PredicateOp = "isNull"
	OpIsNotNull   PredicateOp = "isNotNull"
	OpContainsAll PredicateOp = "containsAll"
	OpContainsAny PredicateOp = "containsAny"
	OpStartsWith  PredicateOp = "startsWith"
	OpEndsWith    PredicateOp = "endsWith"
)

func (op PredicateOp) valid() bool {
	switch op {
	case OpEq, OpNeq, OpGt, OpGte, OpLt, OpLte, OpLike, OpRegex, OpAnd, OpOr, OpNot,
		OpIn, OpBetween, OpIsNull, OpIsNotNull, OpContainsAll, OpContainsAny, OpStartsWith, OpEndsWith:
		return true
	}
	return false
}

// Predicate is a node of a predicate tree. Leaves compare the value at
// Attribute (a dotted path) with Value, or with the value ValueRef names
// ("data.path" or "auth.path"); and/or/not combine Children.
type Predicate struct {
	Op        PredicateOp
	Attribute string // "" when absent
	Value     any    // nil when absent
	Children  []*Predicate
	ValueRef  string // "" when absent

	re   atomic.Pointer[compiledPattern] // like/regex with a Value, compiled on first use
	refs atomic.Pointer[refPatterns]     // like/regex with a ValueRef: recent patterns
	set  atomic.Pointer[compiledSet]     // in with a long Value list, built on first use
}

type compiledSet struct {
	key listKey
	set *valueSet
}

type compiledPattern struct {
	op      PredicateOp
	pattern string
	m       textMatcher // nil when the pattern does not compile
	cost    int         // what a ValueRef node's cache counts for it (refCacheBytes)
}

func (d *decoder) query() (Query, error) {
	var q Query
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "where":
			if d.isNil() {
				_ = d.d.DecodeNil()
				return nil
			}
			q.Where = map[string]any{}
			err = d.readStruct(func(k []byte) error {
				v, err := d.value()
				q.Where[string(k)] = v
				return err
			})
		case "predicate":
			if d.isNil() {
				_ = d.d.DecodeNil()
				return nil
			}
			q.Predicate, err = d.predicate()
		case "sort":
			q.Sort, err = d.sortFields()
		case "limit":
			if d.isNil() {
				_ = d.d.DecodeNil()
				return nil
			}
			var l uint64
			l, err = d.uint(math.MaxUint32)
			l32 := uint32(l)
			q.Limit = &l32
		case "cursor":
			q.Cursor, _, err = d.optStr()
		case "groupBy":
			q.GroupBy, err = d.stringList(true)
		case "aggregations":
			q.Aggregations, err = d.aggregations()
		default:
			return d.skip()
		}
		return err
	})
	return q, err
}

func (d *decoder) predicate() (*Predicate, error) {
	// A live query holds its tree: a 7-byte {"op": "eq"} is a Predicate
	// of over 100 bytes here.
	if err := d.charge(costPredicate); err != nil {
		return nil, err
	}
	p := &Predicate{}
	var have uint8
	err := d.readStruct(func(key []byte) error {
		var err error
		switch string(key) {
		case "op":
			var s string
			s, err = d.str()
			if err == nil && !PredicateOp(s).valid() {
				err = errMalformed("unknown predicate op " + quote(s))
			}
			p.Op = PredicateOp(s)
			have |= 1
		case "attribute":
			p.Attribute, _, err = d.optStr()
		case "value":
			p.Value, err = d.value()
		case "children":
			if d.isNil() {
				_ = d.d.DecodeNil()
				return nil
			}
			p.Children = []*Predicate{}
			_, err = d.readArray(false, func(i, n int) error {
				if i == 0 {
					if err := d.chargeEach(n, costPtr); err != nil {
						return err
					}
					p.Children = make([]*Predicate, 0, n)
				}
				c, err := d.predicate()
				p.Children = append(p.Children, c)
				return err
			})
		case "valueRef":
			p.ValueRef, _, err = d.optStr()
		default:
			return d.skip()
		}
		return err
	})
	if err == nil {
		err = missing(have, "op")
	}
	return p, err
}

// sortFields accepts TopGun's array form [{field, direction}] and the older
// map form {field: direction}; nil means absent.
func (d *decoder) sortFields() ([]SortField, error) {
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	dir := func() (SortDirection, error) {
		s, err := d.str()
		if err != nil {
			return "", err
		}
		if s != string(Asc) && s != string(Desc) {
			return "", errMalformed("sort direction must be \"asc\" or \"desc\", got " + quote(s))
		}
		return SortDirection(s), nil
	}
	switch {
	case c == 0xc0:
		_ = d.d.DecodeNil()
		return nil, nil
	case isMapCode(c):
		out := []SortField{}
		err := d.readStruct(func(key []byte) error {
			if err := d.charge(2*costSortField + len(key)); err != nil { // the slice grows by append
				return err
			}
			dr, err := dir()
			out = append(out, SortField{Field: string(key), Direction: dr})
			return err
		})
		return out, err
	}
	out := []SortField{}
	_, err = d.readArray(false, func(i, n int) error {
		if i == 0 {
			if err := d.chargeEach(n, costSortField); err != nil {
				return err
			}
			out = make([]SortField, 0, n)
		}
		var f SortField
		var have uint8
		err := d.readStruct(func(key []byte) error {
			var err error
			switch string(key) {
			case "field":
				f.Field, err = d.str()
				have |= 1
			case "direction":
				f.Direction, err = dir()
				have |= 2
			default:
				return d.skip()
			}
			return err
		})
		if err == nil {
			err = missing(have, "field", "direction")
		}
		out = append(out, f)
		return err
	})
	return out, err
}

func (d *decoder) aggregations() ([]Aggregation, error) {
	if d.isNil() {
		_ = d.d.DecodeNil()
		return nil, nil
	}
	out := []Aggregation{}
	_, err := d.readArray(false, func(i, n int) error {
		if i == 0 {
			if err := d.chargeEach(n, costAggregation); err != nil {
				return err
			}
			out = make([]Aggregation, 0, n)
		}
		var a Aggregation
		var have uint8
		err := d.readStruct(func(key []byte) error {
			var err error
			switch string(key) {
			case "func":
				a.Func, err = d.str()
				switch a.Func {
				case "count", "sum", "min", "max", "avg":
				default:
					if err == nil {
						err = errMalformed("unknown aggregation func " + quote(a.Func))
					}
				}
				have |= 1
			case "field":
				a.Field, _, err = d.optStr()
			default:
				return d.skip()
			}
			return err
		})
		if err == nil {
			err = missing(have, "func")
		}
		out = append(out, a)
		return err
	})
	return out, err
}

func (e *encoder) query(q *Query) {
	e.mapLen(count(q.Where != nil, q.Predicate != nil, q.Sort != nil, q.Limit != nil,
		q.Cursor != "", q.GroupBy != nil, q.Aggregations != nil))
	if q.Where != nil {
		e.str("where")
		e.value(q.Where)
	}
	if q.Predicate != nil {
		e.str("predicate")
		e.predicate(q.Predicate)
	}
	if q.Sort != nil {
		e.str("sort")
		e.arrayLen(len(q.Sort))
		for _, f := range q.Sort {
			e.mapLen(2)
			e.kv("field", f.Field)
			e.kv("direction", string(f.Direction))
		}
	}
	if q.Limit != nil {
		e.str("limit")
		e.uint(uint64(*q.Limit))
	}
	if q.Cursor != "" {
		e.kv("cursor", q.Cursor)
	}
	if q.GroupBy != nil {
		e.str("groupBy")
		e.strings(q.GroupBy)
	}
	if q.Aggregations != nil {
		e.str("aggregations")
		e.arrayLen(len(q.Aggregations))
		for _, a := range q.Aggregations {
			e.mapLen(1 + count(a.Field != ""))
			e.kv("func", a.Func)
			if a.Field != "" {
				e.kv("field", a.Field)
			}
		}
	}
}

func (e *encoder) predicate(p *Predicate) {
	if !e.enter() {
		return
	}
	e.mapLen(1 + count(p.Attribute != "", p.Value != nil, p.Children != nil, p.ValueRef != ""))
	e.kv("op", string(p.Op))
	if p.Attribute != "" {
		e.kv("attribute", p.Attribute)
	}
	if p.Value != nil {
		e.str("value")
		e.value(p.Value)
	}
	if p.Children != nil {
		e.str("children")
		e.arrayLen(len(p.Children))
		for _, c := range p.Children {
			if c == nil {
				e.fail("predicate has a nil child")
				break
			}
			e.predicate(c)
		}
	}
	if p.ValueRef != "" {
		e.kv("valueRef", p.ValueRef)
	}
	e.leave()
}
