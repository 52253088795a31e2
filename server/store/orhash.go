package store

import (
	"sort"
	"strconv"

	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
)

// orClientHash hashes an OR-Map key's live entries the way TopGun's client
// builds its OR-Map leaf string: "key:{key}|{tag}:{value}:{millis}:{counter}:{nodeId}[:ttl=N]|..."
// with entries sorted by tag.
func orClientHash(key string, m *record.ORMap) uint32 {
	recs := make([]*record.ORMapEntry, len(m.Records))
	for i := range m.Records {
		recs[i] = &m.Records[i]
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Tag < recs[j].Tag })
	b := []byte("key:")
	b = append(b, key...)
	for _, r := range recs {
		b = append(b, '|')
		b = append(b, r.Tag...)
		b = append(b, ':')
		b = append(b, r.Value.String()...)
		b = append(b, ':')
		b = r.Timestamp.AppendText(b)
		if r.TTLMs > 0 {
			b = append(b, ":ttl="...)
			b = strconv.AppendUint(b, r.TTLMs, 10)
		}
	}
	return merkle.FNV1a(string(b))
}
