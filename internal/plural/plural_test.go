package plural

import "testing"

func TestOf(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 shots"}, {1, "1 shot"}, {2, "2 shots"}, {-1, "-1 shots"}} {
		if got := Of(c.n, "shot"); got != c.want {
			t.Errorf("Of(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
