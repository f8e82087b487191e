package main

import (
	"slices"
	"testing"
)

// flagsFirst puts flags before arguments, never reads "--" as a flag's
// value, and leaves a flag that lacks its value last for the parser to
// name.
func TestFlagsFirst(t *testing.T) {
	app := newApp()
	for _, c := range []struct{ in, want []string }{
		{[]string{"madclip", "predict", "a.png", "--checkpoint", "c", "--json"},
			[]string{"madclip", "predict", "--checkpoint", "c", "--json", "--", "a.png"}},
		{[]string{"madclip", "predict", "a.png", "--checkpoint=c", "b.png"},
			[]string{"madclip", "predict", "--checkpoint=c", "--", "a.png", "b.png"}},
		{[]string{"madclip", "predict", "--checkpoint", "c", "--", "-odd.png"},
			[]string{"madclip", "predict", "--checkpoint", "c", "--", "-odd.png"}},
		{[]string{"madclip", "predict", "a.png", "--checkpoint", "c", "--heatmap"},
			[]string{"madclip", "predict", "--checkpoint", "c", "--heatmap"}},
		{[]string{"madclip", "weights", "convert", "in.pt", "out.safetensors", "--vocab", "v"},
			[]string{"madclip", "weights", "convert", "--vocab", "v", "--", "in.pt", "out.safetensors"}},
		{[]string{"madclip", "doctor"}, []string{"madclip", "doctor"}},
		{[]string{"madclip", "nonsense", "x"}, []string{"madclip", "nonsense", "x"}},
	} {
		if got := flagsFirst(app, c.in); !slices.Equal(got, c.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
