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
		"caf\xe9.safetensors":        `$'caf\xe9.safetensors'`,
		"new\nline's":                `$'new\x0aline\'s'`,
		"a\u202eb\\c":                `$'a\xe2\x80\xaeb\\c'`,
		"é ü":                        "'é ü'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{"--dd.safetensors": "./--dd.safetensors", "-x y": "'./-x y'", "a-b": "a-b", "/x/-y": "/x/-y"} {
		if got := Path(in); got != want {
			t.Errorf("Path(%q) = %s, want %s", in, got, want)
		}
	}
	// What needs $'…' comes back whole from bash.
	if bash, err := exec.LookPath("bash"); err == nil {
		for _, in := range []string{"caf\xe9", "new\nline's", "tab\there", "esc\x1b[31m", "a\u202eb\\c", "\xff\xfe'\\"} {
			out, err := exec.Command(bash, "-c", "printf %s "+Quote(in)).Output()
			if err != nil || string(out) != in {
				t.Errorf("bash read %s as %q (%v), want %q", Quote(in), out, err, in)
			}
		}
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, in := range []string{"my ck;rm -rf x", "it's", "a\"b`c`$(d)\\e", "~user", "é ü"} {
		out, err := exec.Command(sh, "-c", "printf %s "+Quote(in)).Output()
		if err != nil || string(out) != in {
			t.Errorf("sh read %s as %q (%v), want %q", Quote(in), out, err, in)
		}
	}
}
