package shellquote

import (
	"os/exec"
	"testing"
)

// Quoted words come back whole from a real shell, and plain ones are left
// as they are.
func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"run.safetensors":            "run.safetensors",
		"/tmp/a-b_c/x+1.safetensors": "/tmp/a-b_c/x+1.safetensors",
		"my ck;rm -rf x":             "'my ck;rm -rf x'",
		"it's":                       `'it'\''s'`,
		"":                           "''",
		"$HOME/*.pt":                 "'$HOME/*.pt'",
		"-x":                         "-x",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, in := range []string{"my ck;rm -rf x", "it's", "a\"b`c`$(d)\\e", "tab\there", "new\nline", "~user", "é ü"} {
		out, err := exec.Command(sh, "-c", "printf %s "+Quote(in)).Output()
		if err != nil || string(out) != in {
			t.Errorf("sh read %s as %q (%v), want %q", Quote(in), out, err, in)
		}
	}
}
