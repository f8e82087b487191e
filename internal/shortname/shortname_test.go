package shortname

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFit(t *testing.T) {
	if got := Fit("scan.png", 20); got != "scan.png" {
		t.Errorf("a short name changed: %q", got)
	}
	a, b := strings.Repeat("a", 300)+"1", strings.Repeat("a", 300)+"2"
	fa, fb := Fit(a, 100), Fit(b, 100)
	if len(fa) != 100 || len(fb) != 100 || fa == fb || !strings.HasPrefix(fa, strings.Repeat("a", 91)+"~") {
		t.Errorf("long names: %q, %q", fa, fb)
	}
	if Fit(a, 100) != fa {
		t.Error("not stable")
	}
	// A cut inside a character moves before it: the result stays UTF-8.
	e := strings.Repeat("é", 100) // 2 bytes each
	if got := Fit(e, 50); !utf8.ValidString(got) || len(got) > 50 || len(got) < 48 {
		t.Errorf("UTF-8 name: %q (%d bytes)", got, len(got))
	}
}
