package bpe

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func tokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestGolden(t *testing.T) {
	tk := tokenizer(t)
	if len(golden) < 40 {
		t.Fatalf("only %d golden strings", len(golden))
	}
	for _, g := range golden {
		if got := tk.EncodeWithSpecials(g.text); !slices.Equal(got, g.ids) {
			t.Errorf("%q:\n got  %v\n want %v", g.text, got, g.ids)
		}
	}
}

func TestTokenizePadsAndTruncates(t *testing.T) {
	tk := tokenizer(t)
	ids := tk.Tokenize("a photo of a cat", ContextLength)
	want := []int64{SOT, 320, 1125, 539, 320, 2368, EOT}
	if len(ids) != ContextLength {
		t.Fatalf("length %d", len(ids))
	}
	for i, w := range want {
		if ids[i] != w {
			t.Fatalf("ids %v", ids[:8])
		}
	}
	for _, v := range ids[len(want):] {
		if v != 0 {
			t.Fatal("padding is not zero")
		}
	}
	long := tk.Tokenize(strings.Repeat("word ", 200), ContextLength)
	if len(long) != ContextLength || long[0] != SOT || long[ContextLength-1] != EOT {
		t.Errorf("truncation: first %d last %d", long[0], long[ContextLength-1])
	}
	if long[ContextLength-2] == EOT || long[ContextLength-2] == 0 {
		t.Error("truncation did not keep the text up to the last slot")
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	tk := tokenizer(t)
	for _, s := range []string{"a photo of a cat", "damaged retinal oct", "café"} {
		if got := tk.Decode(tk.Encode(s)); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
}

func TestLoadHF(t *testing.T) {
	tk := tokenizer(t)
	dir := t.TempDir()
	// Write the vocabulary in Hugging Face's layout from the loaded tokenizer.
	vocab, err := json.Marshal(tk.encoder)
	if err != nil {
		t.Fatal(err)
	}
	var merges strings.Builder
	merges.WriteString("#version: 0.2\n")
	ordered := make([]string, len(tk.ranks))
	for m, r := range tk.ranks {
		ordered[r] = m
	}
	for _, m := range ordered {
		merges.WriteString(m + "\n")
	}
	vp := filepath.Join(dir, "vocab.json")
	mp := filepath.Join(dir, "merges.txt")
	os.WriteFile(vp, vocab, 0o644)
	os.WriteFile(mp, []byte(merges.String()), 0o644)
	hf, err := LoadHF(vp, mp)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range golden[:10] {
		if got := hf.EncodeWithSpecials(g.text); !slices.Equal(got, g.ids) {
			t.Errorf("HF %q: %v", g.text, got)
		}
	}
	// A vocabulary that disagrees with the merges is refused.
	bad := strings.Replace(string(vocab), `"a\u003c/w\u003e":320`, `"a\u003c/w\u003e":321`, 1)
	os.WriteFile(vp, []byte(bad), 0o644)
	if _, err := LoadHF(vp, mp); err == nil || !strings.Contains(err.Error(), "a</w>") {
		t.Errorf("mismatched vocab: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"text.txt":  "hello world\n",
		"short.txt": "#version: 0.2\ni n\nt h\n",
		"bad.txt":   "#version: 0.2\nonlyone\n",
		"empty.txt": "",
	}
	for name, body := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.txt.gz")); err == nil {
		t.Error("missing file accepted")
	}
	// A truncated gzip stream is an error, not a short vocabulary.
	p := filepath.Join(dir, "trunc.txt.gz")
	os.WriteFile(p, embeddedVocab[:len(embeddedVocab)/20], 0o644)
	if _, err := Load(p); err == nil {
		t.Error("truncated gzip accepted")
	}
	// The whole file loads from disk as it does from the binary.
	p = filepath.Join(dir, "vocab.txt.gz")
	os.WriteFile(p, embeddedVocab, 0o644)
	fromFile, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fromFile.Encode("damaged Brain"), tokenizer(t).Encode("damaged Brain"); !slices.Equal(got, want) {
		t.Errorf("file vocab encodes %v, built-in %v", got, want)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"  Hello\n\tWorld  ": "hello world",
		"&amp;amp;":          "&",
		"ΟΔΟΣ ΣΑΣ":           "οδος σας",
		"İ":                  "i\u0307",
		"cafe\u0301":         "caf\u00e9",
		"a\u001cb":           "a b",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzEncode: no input panics, and every id lies in the vocabulary.
func FuzzEncode(f *testing.F) {
	tk := tokenizer(f)
	for _, g := range golden {
		f.Add(g.text)
	}
	f.Add("\xff\xfe invalid utf-8 \xc3")
	f.Fuzz(func(t *testing.T, s string) {
		ids := tk.Tokenize(s, ContextLength)
		if len(ids) != ContextLength || ids[0] != SOT {
			t.Fatalf("bad framing %v", ids[:2])
		}
		sawEOT := false
		for _, id := range ids {
			if id < 0 || id >= VocabSize {
				t.Fatalf("id %d outside the vocabulary", id)
			}
			if id == EOT {
				sawEOT = true
			}
		}
		if !sawEOT {
			t.Fatal("no EOT")
		}
	})
}
