// Package bpe is CLIP's byte-level BPE tokenizer: the same text cleanup,
// pre-tokenisation and merges as OpenAI's, so that the same strings give the
// same token ids.
package bpe

import (
	"bufio"
	"compress/gzip"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"madclip/internal/regularfile"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Special tokens and the context length of OpenAI's CLIP.
const (
	SOT           = 49406 // <|startoftext|>
	EOT           = 49407 // <|endoftext|>
	ContextLength = 77
	// VocabSize is the size of CLIP's vocabulary: 256 byte symbols, the same
	// with the end-of-word mark, 48,894 merges and the two special tokens.
	VocabSize = 49408
	numMerges = VocabSize - 2*256 - 2
)

// CLIP's pre-tokenisation: the two special tokens, the English contractions,
// runs of letters, single digits, and runs of anything else but spaces.
var splitPattern = regexp.MustCompile(`<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`)

// Tokenizer turns text into CLIP token ids. It is safe for concurrent use.
type Tokenizer struct {
	encoder  map[string]int
	ranks    map[string]int // "a b" → merge priority (lower first)
	byteRune [256]rune

	mu    sync.Mutex
	cache map[string][]int
}

func printable(b int) bool {
	return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
}

// byteRunes maps every byte to a printable rune, as CLIP's vocabulary
// spells bytes: printable Latin-1 bytes map to themselves, the others to
// U+0100 onwards in byte order.
func byteRunes() [256]rune {
	var m [256]rune
	next := 256
	for b := 0; b < 256; b++ {
		if printable(b) {
			m[b] = rune(b)
		} else {
			m[b] = rune(next)
			next++
		}
	}
	return m
}

// byteOrder is the order of the byte symbols in CLIP's vocabulary: the
// printable bytes first, then the others, each in byte order.
func byteOrder() []int {
	order := make([]int, 0, 256)
	for b := 0; b < 256; b++ {
		if printable(b) {
			order = append(order, b)
		}
	}
	for b := 0; b < 256; b++ {
		if !printable(b) {
			order = append(order, b)
		}
	}
	return order
}

// newTokenizer builds the vocabulary from the merges in priority order, the
// way CLIP's vocabulary is laid out.
func newTokenizer(merges [][2]string) (*Tokenizer, error) {
	t := &Tokenizer{byteRune: byteRunes(), cache: map[string][]int{}}
	t.encoder = make(map[string]int, VocabSize)
	t.ranks = make(map[string]int, len(merges))
	vocab := make([]string, 0, VocabSize)
	order := byteOrder()
	for _, b := range order {
		vocab = append(vocab, string(t.byteRune[b]))
	}
	for _, b := range order {
		vocab = append(vocab, string(t.byteRune[b])+"</w>")
	}
	for i, m := range merges {
		vocab = append(vocab, m[0]+m[1])
		t.ranks[m[0]+" "+m[1]] = i
	}
	vocab = append(vocab, "<|startoftext|>", "<|endoftext|>")
	for i, v := range vocab {
		t.encoder[v] = i
	}
	if len(vocab) != VocabSize {
		return nil, fmt.Errorf("vocabulary has %d entries, want %d", len(vocab), VocabSize)
	}
	return t, nil
}

// Load reads OpenAI's merges file (bpe_simple_vocab_16e6.txt.gz; plain text
// is accepted too).
func Load(path string) (*Tokenizer, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load vocab: %w", err)
	}
	defer f.Close()
	t, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("load vocab %s: %w", path, err)
	}
	return t, nil
}

// Read reads a merges file, gzip-compressed or plain, from r.
func Read(r io.Reader) (*Tokenizer, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		src = gz
	}
	merges, err := readMerges(src, numMerges)
	if err != nil {
		return nil, err
	}
	return newTokenizer(merges)
}

// maxLine bounds a merges file's line (CLIP's longest is 26 bytes).
const maxLine = 1 << 20

// readMerges reads the first n merge lines after the version line.
func readMerges(r io.Reader, n int) ([][2]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), maxLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, scanError(err, 1)
		}
		return nil, errors.New("empty merges file")
	}
	if !strings.HasPrefix(sc.Text(), "#version") && !strings.HasPrefix(sc.Text(), "\"bpe_simple_vocab") {
		return nil, fmt.Errorf("not a BPE merges file: first line %q", truncate(sc.Text(), 40))
	}
	merges := make([][2]string, 0, n)
	for len(merges) < n && sc.Scan() {
		a, b, ok := strings.Cut(sc.Text(), " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("merge line %d is not two symbols: %q", len(merges)+2, truncate(sc.Text(), 40))
		}
		merges = append(merges, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, scanError(err, len(merges)+2)
	}
	if len(merges) < n {
		return nil, fmt.Errorf("only %d merges, CLIP needs %d (truncated file?)", len(merges), n)
	}
	return merges, nil
}

// scanError says what a failed read of line means for a merges file: one
// over the scanner's limit is not a line of one.
func scanError(err error, line int) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("line %d is longer than %d KiB: not a BPE merges file", line, maxLine>>10)
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// LoadHF reads a Hugging Face CLIP tokenizer (vocab.json and merges.txt) and
// checks that its vocabulary is CLIP's.
func LoadHF(vocabJSON, mergesTXT string) (*Tokenizer, error) {
	f, err := regularfile.Open(mergesTXT)
	if err != nil {
		return nil, fmt.Errorf("load merges: %w", err)
	}
	defer f.Close()
	merges, err := readMerges(f, numMerges)
	if err != nil {
		return nil, fmt.Errorf("load merges %s: %w", mergesTXT, err)
	}
	t, err := newTokenizer(merges)
	if err != nil {
		return nil, fmt.Errorf("load merges %s: %w", mergesTXT, err)
	}
	vf, err := regularfile.Open(vocabJSON)
	if err != nil {
		return nil, fmt.Errorf("load vocab: %w", err)
	}
	b, err := io.ReadAll(vf)
	vf.Close()
	if err != nil {
		return nil, fmt.Errorf("load vocab %s: %w", vocabJSON, err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(b, &vocab); err != nil {
		return nil, fmt.Errorf("load vocab %s: %w", vocabJSON, err)
	}
	if len(vocab) != VocabSize {
		return nil, fmt.Errorf("load vocab %s: %d entries, CLIP has %d", vocabJSON, len(vocab), VocabSize)
	}
	for tok, id := range vocab {
		if want, ok := t.encoder[tok]; !ok || want != id {
			return nil, fmt.Errorf("load vocab %s: token %q has id %d, the merges give %d", vocabJSON, tok, id, want)
		}
	}
	return t, nil
}

// Clean applies CLIP's text cleanup: Unicode NFC, HTML entities unescaped
// twice, runs of white space collapsed to one space, ends trimmed, lower case.
func Clean(text string) string {
	text = norm.NFC.String(text)
	text = html.UnescapeString(html.UnescapeString(text))
	text = strings.Join(strings.FieldsFunc(text, isSpace), " ")
	return lower(text)
}

// isSpace is Python's notion of white space (str.isspace), which CLIP's
// cleanup uses: Go's unicode.IsSpace plus the information separators.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// lower is Python's str.lower: simple case mapping plus the one
// unconditional special mapping (İ → i̇) and Greek final sigma.
func lower(s string) string {
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch {
		case r == 'İ':
			b.WriteString("i\u0307")
		case r == 'Σ' && finalSigma(rs, i):
			b.WriteRune('ς')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at i ends a word: a cased
// letter comes before it and none after it (case-ignorable runes skipped).
func finalSigma(rs []rune, i int) bool {
	before := false
	for j := i - 1; j >= 0; j-- {
		if caseIgnorable(rs[j]) {
			continue
		}
		before = cased(rs[j])
		break
	}
	if !before {
		return false
	}
	for j := i + 1; j < len(rs); j++ {
		if caseIgnorable(rs[j]) {
			continue
		}
		return !cased(rs[j])
	}
	return true
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r)
}

func caseIgnorable(r rune) bool {
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk) ||
		r == '\'' || r == '.' || r == ':' || r == '^' || r == '`' || r == 0xB7 || r == 0x2019
}

// Encode returns the token ids of text, without the start and end tokens.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for _, word := range splitPattern.FindAllString(Clean(text), -1) {
		ids = append(ids, t.encodeWord(word)...)
	}
	return ids
}

// EncodeWithSpecials returns SOT, the ids of text, EOT.
func (t *Tokenizer) EncodeWithSpecials(text string) []int {
	ids := append([]int{SOT}, t.Encode(text)...)
	return append(ids, EOT)
}

// Tokenize returns SOT, the ids of text and EOT, padded with zeros to
// length; a longer sequence is truncated with EOT kept as its last token.
func (t *Tokenizer) Tokenize(text string, length int) []int64 {
	ids := t.EncodeWithSpecials(text)
	if len(ids) > length {
		ids = ids[:length]
		ids[length-1] = EOT
	}
	out := make([]int64, length)
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// encodeWord turns one pre-token into ids through its bytes' symbols and
// the merges.
func (t *Tokenizer) encodeWord(word string) []int {
	if id, ok := t.encoder[word]; ok && (word == "<|startoftext|>" || word == "<|endoftext|>") {
		return []int{id}
	}
	t.mu.Lock()
	ids, ok := t.cache[word]
	t.mu.Unlock()
	if ok {
		return ids
	}
	syms := make([]string, 0, len(word))
	for i := 0; i < len(word); i++ {
		syms = append(syms, string(t.byteRune[word[i]]))
	}
	syms[len(syms)-1] += "</w>"
	syms = t.merge(syms)
	ids = make([]int, len(syms))
	for i, s := range syms {
		ids[i] = t.encoder[s]
	}
	t.mu.Lock()
	if len(t.cache) < 1<<16 {
		t.cache[word] = ids
	}
	t.mu.Unlock()
	return ids
}

// merge applies the merges to a word's symbols as CLIP does: repeatedly the
// adjacent pair of lowest rank, every non-overlapping occurrence left to
// right. The pairs wait in a heap by (rank, position) over a linked list
// of the symbols, so a word of n bytes costs O(n log n), not O(n²) (a long
// run of letters is one word).
func (t *Tokenizer) merge(syms []string) []string {
	n := len(syms)
	if n < 2 {
		return syms
	}
	next := make([]int, n) // -1 at the end
	prev := make([]int, n) // -1 at the start
	ver := make([]int, n)  // bumped whenever a symbol changes or goes
	for i := range n {
		next[i], prev[i] = i+1, i-1
	}
	next[n-1] = -1
	h := &pairHeap{}
	push := func(l int) {
		if l < 0 || next[l] < 0 {
			return
		}
		r := next[l]
		if rank, ok := t.ranks[syms[l]+" "+syms[r]]; ok {
			heap.Push(h, pair{rank: rank, left: l, right: r, lv: ver[l], rv: ver[r]})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	valid := func(p pair) bool { return ver[p.left] == p.lv && ver[p.right] == p.rv && next[p.left] == p.right }
	var round []pair
	for h.Len() > 0 {
		// Every occurrence of the lowest-ranked pair, left to right (node
		// indices keep the word's order).
		round = append(round[:0], heap.Pop(h).(pair))
		for h.Len() > 0 && (*h)[0].rank == round[0].rank {
			round = append(round, heap.Pop(h).(pair))
		}
		slices.SortFunc(round, func(a, b pair) int { return a.left - b.left })
		for _, p := range round {
			if !valid(p) { // overlapped by the occurrence before it
				continue
			}
			l, r := p.left, p.right
			syms[l] += syms[r]
			ver[l]++
			ver[r]++
			next[l] = next[r]
			if next[r] >= 0 {
				prev[next[r]] = l
			}
			push(prev[l])
			push(l)
		}
	}
	out := syms[:0:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

// pair is a candidate merge of the symbols at nodes left and right, valid
// while both keep the versions it was made with.
type pair struct {
	rank, left, right int
	lv, rv            int
}

type pairHeap []pair

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	return h[i].rank < h[j].rank || (h[i].rank == h[j].rank && h[i].left < h[j].left)
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pair)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Decode turns ids back into text (word ends become spaces), for messages
// and debugging. Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	dec := make(map[rune]byte, 256)
	for b, r := range t.byteRune {
		dec[r] = byte(b)
	}
	inv := make(map[int]string, len(t.encoder))
	for s, id := range t.encoder {
		inv[id] = s
	}
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(inv[id])
	}
	var out []byte
	for _, r := range strings.ReplaceAll(sb.String(), "</w>", " ") {
		if b, ok := dec[r]; ok {
			out = append(out, b)
		} else {
			out = append(out, string(r)...)
		}
	}
	return strings.TrimSpace(string(out))
}
