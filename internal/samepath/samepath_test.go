package samepath

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSame(t *testing.T) {
	dir := t.TempDir()
	data, other := filepath.Join(dir, "data"), filepath.Join(dir, "other")
	os.Mkdir(data, 0o755)
	os.Mkdir(other, 0o755)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{data, data + "/", true},
		{data, filepath.Join(dir, "other", "..", "data"), true},
		{data, link, true},
		{data, other, false},
		{filepath.Join(dir, "gone"), filepath.Join(dir, "gone"), true}, // one spelling, though not there
		{filepath.Join(dir, "gone"), data, false},
	} {
		if got := Same(c.a, c.b); got != c.want {
			t.Errorf("Same(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
