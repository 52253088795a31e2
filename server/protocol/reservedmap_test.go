package protocol

import "testing"

// A store that folds case as Unicode does (CaseFolding.txt folds ſ to s)
// files "$ſys/x" with "$sys/x": such names are the server's too, and a
// name only like a reserved one (a Kelvin sign has no counterpart in the
// prefixes) stays a client's.
func TestReservedMap_unicodeFold(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"$sys/x": true, "$SYS/x": true, "$ſys/x": true, "$ſyſ/x": true, "_TOPGUN_x": true,
		"_topgun": false, "\u212a_topgun_": false, "_topgun\u212a": false, "$sy": false, "": false, "$\xc5": false,
	} {
		if got := reservedMap(name); got != want {
			t.Errorf("reservedMap(%q) = %v, want %v", name, got, want)
		}
	}
}
