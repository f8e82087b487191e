package bpe

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
	// One endless line, first or later: said in words, not the scanner's.
	for i, body := range []string{strings.Repeat("x", 2<<20), "#version: 0.2\ni n\n" + strings.Repeat("y", 2<<20)} {
		p := filepath.Join(dir, fmt.Sprintf("long%d.txt", i))
		os.WriteFile(p, []byte(body), 0o644)
		want := fmt.Sprintf("load vocab %s: line %d is longer than 1024 KiB: not a BPE merges file", p, 1+2*i)
		if _, err := Load(p); err == nil || err.Error() != want {
			t.Errorf("a long line: %v, want %s", err, want)
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

// mergeQuadratic is the merge loop as CLIP's Python writes it (find the
// lowest-ranked pair, merge every occurrence left to right, repeat): the
// reference for the heap-based merge.
func mergeQuadratic(t *Tokenizer, syms []string) []string {
	for len(syms) > 1 {
		best, bestRank := "", -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := t.ranks[syms[i]+" "+syms[i+1]]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = syms[i]+" "+syms[i+1], r
			}
		}
		if bestRank < 0 {
			break
		}
		a, b, _ := strings.Cut(best, " ")
		var out []string
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
				out = append(out, a+b)
				i++
			} else {
				out = append(out, syms[i])
			}
		}
		syms = out
	}
	return syms
}

// The heap-based merge gives the reference loop's symbols on random words
// of letters that merge a lot (repeats, overlapping pairs like "aaaa"),
// random bytes, and the golden texts' words; and a 200,000-letter word
// takes well under the reference's quadratic time.
func TestMergeEqualsReference(t *testing.T) {
	tk := tokenizer(t)
	r := rand.New(rand.NewPCG(7, 8))
	words := []string{"aaaaaaaaaaaaaaaaa", "abababababab", "lllllllll", "mississippi", "the", "x"}
	alphabets := []string{"ab", "aeilnorst", "abcdefghijklmnopqrstuvwxyz", "é字ß\x01 "}
	for range 3000 {
		al := []rune(alphabets[r.IntN(len(alphabets))])
		var b strings.Builder
		for range 1 + r.IntN(40) {
			b.WriteRune(al[r.IntN(len(al))])
		}
		words = append(words, b.String())
	}
	for _, g := range golden {
		words = append(words, splitPattern.FindAllString(Clean(g.text), -1)...)
	}
	symbols := func(w string) []string {
		syms := make([]string, 0, len(w))
		for i := 0; i < len(w); i++ {
			syms = append(syms, string(tk.byteRune[w[i]]))
		}
		syms[len(syms)-1] += "</w>"
		return syms
	}
	for _, w := range words {
		got, want := tk.merge(symbols(w)), mergeQuadratic(tk, symbols(w))
		if !slices.Equal(got, want) {
			t.Fatalf("%q: %q, want %q", w, got, want)
		}
	}
	// Random letters merge few pairs per round: the reference's worst case
	// (about 7 s for 30,000 letters through the old loop on the 2-core
	// development machine; quadratic, so minutes for this one).
	var long strings.Builder
	for range 200_000 {
		long.WriteByte(byte('a' + r.IntN(26)))
	}
	start := time.Now()
	ids := tk.Tokenize(long.String(), ContextLength)
	el := time.Since(start)
	if el > 5*time.Second || ids[ContextLength-1] != EOT {
		t.Errorf("a %d-letter word took %v", long.Len(), el)
	}
	t.Logf("a %d-letter word tokenised in %v", long.Len(), el)
}
