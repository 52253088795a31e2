package setting

import "testing"

func TestName(t *testing.T) {
	rename := func(env string) string {
		if env == "TOPGUN_A" {
			return "a"
		}
		return ""
	}
	for _, tc := range []struct {
		rename    func(string) string
		env, want string
	}{
		{nil, "TOPGUN_A", "TOPGUN_A"},
		{rename, "TOPGUN_A", "a"},
		{rename, "TOPGUN_B", "TOPGUN_B"},
	} {
		if got := Name(tc.rename, tc.env); got != tc.want {
			t.Errorf("Name(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}
