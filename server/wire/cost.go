package wire

// MaxQueryCost bounds Query.Cost for the queries a server accepts: it
// bounds the work of matching one change against a live query, which the
// server does for every write to the query's map on the one goroutine
// that serves the change feed to all clients. The memory budgets of
// queries alone allow a predicate of hundreds of thousands of nodes. A
// real query costs a few dozen units; TopGun sets no such bound (its
// only one is the decoder's depth, Limits.MaxDepth).
const MaxQueryCost = 10000

// CostBytesPerUnit is how many bytes of a string a node reads or hashes
// for every record (an attribute path, a where-clause field, a ValueRef,
// a like/regex pattern) count one unit of Query.Cost.
const CostBytesPerUnit = 64

// Cost estimates the work of matching one record against the query's
// filter (Match) in units of about one predicate node visited: every node
// of the Predicate tree counts 1 (not counts its first child only, as it
// evaluates), plus one per CostBytesPerUnit bytes of its attribute and
// ValueRef, a like/regex pattern one per CostBytesPerUnit bytes
// (MaxPatternBytes for one read from records), an in list one per element
// when it is scanned (under 16 elements) and 1 when looked up in a hash
// set, and a containsAll/containsAny list one per element; without a
// Predicate, each Where field and each operator of it counts likewise.
// Comparing with a value read from the record costs what the record's
// size allows and counts nothing more. Counting stops as soon as the
// total passes limit; the count returned is then past limit.
func (q *Query) Cost(limit int) int {
	if q == nil {
		return 0
	}
	if q.Predicate != nil {
		n := 0
		q.Predicate.cost(&n, limit, 0)
		return n
	}
	n := 0
	for field, want := range q.Where {
		n += 1 + len(field)/CostBytesPerUnit
		ops, ok := operatorObject(want)
		if !ok {
			continue
		}
		for op, arg := range ops {
			n++
			switch op {
			case "$like", "$regex":
				if s, ok := arg.(string); ok {
					n += len(s) / CostBytesPerUnit
				}
			case "$in", "$nin":
				if list, ok := arg.([]any); ok && len(list) < minSetLen {
					n += len(list)
				}
			}
		}
		if n > limit {
			return n
		}
	}
	return n
}

func (p *Predicate) cost(n *int, limit, depth int) {
	if *n > limit {
		return
	}
	*n++
	if p == nil || depth > maxEvalDepth {
		return
	}
	*n += (len(p.Attribute) + len(p.ValueRef)) / CostBytesPerUnit
	switch p.Op {
	case OpAnd, OpOr:
		for _, c := range p.Children {
			if c.cost(n, limit, depth+1); *n > limit {
				return
			}
		}
	case OpNot:
		if len(p.Children) > 0 {
			p.Children[0].cost(n, limit, depth+1)
		}
	case OpLike, OpRegex:
		if p.ValueRef != "" {
			*n += MaxPatternBytes / CostBytesPerUnit
		} else if s, ok := p.Value.(string); ok {
			*n += len(s) / CostBytesPerUnit
		}
	case OpIn:
		if list, ok := p.Value.([]any); ok && p.ValueRef == "" && len(list) < minSetLen {
			*n += len(list)
		}
	case OpContainsAll, OpContainsAny:
		if list, ok := p.Value.([]any); ok && p.ValueRef == "" {
			*n += len(list)
		}
	}
}
