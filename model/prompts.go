package model

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/model/param"
	"madclip/torch"
)

// objectWords maps the benchmark datasets to the word their prompts use.
var objectWords = map[string]string{
	"Brain":          "Brain",
	"Liver":          "Liver",
	"Retina_RESC":    "retinal OCT",
	"Retina_OCT2017": "retinal OCT",
	"Chest":          "Chest X-ray film",
	"Histopathology": "histopathological image",
}

// ObjectWords maps the benchmark datasets to the word their prompts use (a
// copy: the table itself is fixed).
func ObjectWords() map[string]string { return maps.Clone(objectWords) }

// ObjectWord is the word the prompts of a benchmark dataset use, and false
// for a dataset that is not one of the six.
func ObjectWord(dataset string) (string, bool) {
	w, ok := objectWords[dataset]
	return w, ok
}

// GenericObjectWord replaces the object word in the paper's ablation.
const GenericObjectWord = "medical image"

// State phrases; {} is the object word.
var (
	normalPhrases   = []string{"{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect", "{} without damage"}
	abnormalPhrases = []string{"damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage", "disease {}", "abnormal {}"}
)

// StatePhrases are the state phrases of the normal and the abnormal class,
// in prompt order; {} is the object word.
func StatePhrases() [2][]string {
	return [2][]string{slices.Clone(normalPhrases), slices.Clone(abnormalPhrases)}
}

// handcraftedTemplates are the 35 sentence templates of the hand-crafted
// prompt ablation (the authors' text_mood=fix, as in their utils.py); {}
// takes a state phrase.
var handcraftedTemplates = []string{
	"a bad photo of a {}.", "a low resolution photo of the {}.", "a bad photo of the {}.", "a cropped photo of the {}.",
	"a bright photo of a {}.", "a dark photo of the {}.", "a photo of my {}.", "a photo of the cool {}.",
	"a close-up photo of a {}.", "a black and white photo of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
	"a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.",
	"a photo of one {}.", "a close-up photo of the {}.", "a photo of a {}.", "a low resolution photo of a {}.",
	"a photo of a large {}.", "a blurry photo of a {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.",
	"a photo of the small {}.", "a photo of the large {}.", "a black and white photo of a {}.", "a dark photo of a {}.",
	"a photo of a cool {}.", "a photo of a small {}.", "there is a {} in the scene.", "there is the {} in the scene.",
	"this is a {} in the scene.", "this is the {} in the scene.", "this is one {} in the scene.",
}

// Position is where a prompt's learnable context sits around its phrase.
type Position int

// The three layouts (CoOp's class-token positions).
const (
	End    Position = iota // [SOT][ctx×8][phrase][.][EOT]
	Front                  // [SOT][phrase][ctx×8][.][EOT]
	Middle                 // [SOT][ctx×4][phrase][ctx×4][.][EOT]
)

// Positions lists the layouts in the order prompts are built.
func Positions() [3]Position { return [3]Position{End, Front, Middle} }

func (p Position) String() string {
	return [...]string{"end", "front", "middle"}[p]
}

// NumCtx is the number of learnable context vectors per prompt.
const NumCtx = 8

// PromptLearner holds, for each class (normal, abnormal) and each of its
// state phrases, NumCtx learnable context vectors at each position, and the
// frozen token embeddings of the prompts' fixed parts.
type PromptLearner struct {
	// Ctx[class] is [phrases, positions, NumCtx, D]: one tensor per class,
	// so that the prompts assemble with one gather and Adam holds two
	// tensors.
	Ctx [2]*torch.Tensor
	// Handcrafted prompts have no context: every state phrase in every
	// handcraftedTemplates sentence, encoded once (see Handcrafted).
	Handcrafted bool

	prompts [2][]prompt
	fixed   *torch.Tensor // [n·L, D] token embeddings of the prompts' token ids
	gather  *torch.Tensor // [2·PromptCount·L] int64: rows of [fixed; Ctx[0]; Ctx[1]] for each token of each prompt
	eot     *torch.Tensor // [2·PromptCount] int64, the EOT position of each prompt
	text    *torch.Tensor // [2, E] the hand-crafted class embeddings; nil for learned prompts
}

// prompt is one prompt's token layout: the ids of "X×8 {phrase}." (or of a
// hand-crafted sentence) and the phrase's length in tokens.
type prompt struct {
	phrase    string
	ids       []int64 // padded to the context length
	phraseLen int
}

// PromptCount is the number of prompts per class.
func (p *PromptLearner) PromptCount() int {
	if p.Handcrafted {
		return len(p.prompts[0]) // phrases × templates
	}
	return len(p.prompts[0]) * len(Positions())
}

func newPromptLearner(b *param.Builder, tk *bpe.Tokenizer, object string, width, context int, handcrafted bool) (*PromptLearner, error) {
	p := &PromptLearner{Handcrafted: handcrafted}
	xs := strings.TrimSpace(strings.Repeat("X ", NumCtx))
	for c, phrases := range StatePhrases() {
		class := [2]string{"normal", "abnormal"}[c]
		for _, tmpl := range phrases {
			phrase := strings.ReplaceAll(tmpl, "{}", object)
			if handcrafted {
				for _, sentence := range handcraftedTemplates {
					pr, err := newPrompt(tk, strings.ReplaceAll(sentence, "{}", phrase), phrase, context)
					if err != nil {
						return nil, err
					}
					p.prompts[c] = append(p.prompts[c], pr)
				}
				continue
			}
			pr, err := newPrompt(tk, xs+" "+phrase+".", phrase, context)
			if err != nil {
				return nil, err
			}
			p.prompts[c] = append(p.prompts[c], pr)
		}
		if !handcrafted {
			p.Ctx[c] = b.Sub("prompts").Get(class, param.Normal(0.02), int64(len(phrases)), int64(len(Positions())), NumCtx, int64(width))
		}
	}
	return p, nil
}

// maxObjectBytes bounds the object word before it is tokenized: far more
// than the prompts' 77 tokens can hold.
const maxObjectBytes = 1000

// CheckObjectText is CheckObject's part that needs no tokenizer: the word
// is not empty, holds no control character and is not absurdly long.
func CheckObjectText(object string) error {
	switch {
	case strings.TrimSpace(object) == "":
		return errors.New("the object word is empty")
	case strings.ContainsFunc(object, func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
	}):
		return errors.New("the object word holds a control character (a line break?) or an invisible formatting mark")
	case len(object) > maxObjectBytes:
		return fmt.Errorf("the object word is %d bytes, far more than a prompt's 77 tokens hold", len(object))
	}
	return nil
}

// CheckObject refuses an object word whose prompts would not fit CLIP's
// 77-token context (learned ones, and the hand-crafted sentences of the
// ablation), or that holds a control character: the word a user gives is
// checked before CLIP is loaded, not when the prompts are built.
func CheckObject(tk *bpe.Tokenizer, object string) error {
	if err := CheckObjectText(object); err != nil {
		return err
	}
	xs := strings.TrimSpace(strings.Repeat("X ", NumCtx))
	longest := 0
	for _, phrases := range StatePhrases() {
		for _, tmpl := range phrases {
			phrase := strings.ReplaceAll(tmpl, "{}", object)
			longest = max(longest, len(tk.EncodeWithSpecials(xs+" "+phrase+".")))
			for _, sentence := range handcraftedTemplates {
				longest = max(longest, len(tk.EncodeWithSpecials(strings.ReplaceAll(sentence, "{}", phrase))))
			}
		}
	}
	if longest > promptContext {
		return fmt.Errorf("its longest prompt is %d tokens, more than CLIP's %d-token context; give a shorter word", longest, promptContext)
	}
	return nil
}

// promptContext is the context of every OpenAI CLIP's text tower.
const promptContext = 77

// newPrompt tokenizes text (with the start and end tokens), padded to the
// context length.
func newPrompt(tk *bpe.Tokenizer, text, phrase string, context int) (prompt, error) {
	ids := tk.EncodeWithSpecials(text)
	if len(ids) > context {
		return prompt{}, fmt.Errorf("prompt %q is %d tokens, longer than the %d-token context", text, len(ids), context)
	}
	padded := make([]int64, context)
	for j, id := range ids {
		padded[j] = int64(id)
	}
	return prompt{phrase: phrase, ids: padded, phraseLen: len(tk.Encode(phrase))}, nil
}

// Layout returns the token ids of prompt i of class c at position pos, with
// -1 where a learnable context vector sits. It shows the arrangement that
// Assemble builds from embeddings.
func (p *PromptLearner) Layout(c, i int, pos Position) []int64 {
	pr := p.prompts[c][i]
	if p.Handcrafted {
		return append([]int64(nil), pr.ids...)
	}
	ctx := make([]int64, NumCtx)
	for j := range ctx {
		ctx[j] = -1
	}
	sot := pr.ids[:1]
	phrase := pr.ids[1+NumCtx : 1+NumCtx+pr.phraseLen]
	rest := pr.ids[1+NumCtx+pr.phraseLen:]
	var out []int64
	switch pos {
	case End:
		out = cat(sot, ctx, phrase, rest)
	case Front:
		out = cat(sot, phrase, ctx, rest)
	case Middle:
		out = cat(sot, ctx[:NumCtx/2], phrase, ctx[NumCtx/2:], rest)
	}
	return out
}

func cat(parts ...[]int64) []int64 {
	var out []int64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// prepare embeds the fixed token ids once with the frozen token embedding;
// hand-crafted prompts are encoded once and for all (see encodeHandcrafted).
func (p *PromptLearner) prepare(text *clip.TextTransformer, dev torch.Device) error {
	var ids, eot []int64
	for c := range 2 {
		for _, pr := range p.prompts[c] {
			ids = append(ids, pr.ids...)
			e := int64(0)
			for j, id := range pr.ids {
				if id == bpe.EOT {
					e = int64(j)
				}
			}
			eot = append(eot, e)
		}
	}
	n := int64(len(eot))
	L := int64(len(p.prompts[0][0].ids))
	return torch.NoGrad(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			t := torch.FromSlice(ids, n, L).ToDevice(dev)
			e := torch.FromSlice(eot).ToDevice(dev)
			if p.Handcrafted {
				f := p.encodeHandcrafted(text, t, e)
				if err := f.Err(); err != nil {
					return err
				}
				p.text = f.Persist()
				return nil
			}
			emb := text.Embed(t)
			if err := emb.Err(); err != nil {
				return err
			}
			p.fixed = emb.View(n*L, -1).Persist()
			p.gather = torch.FromSlice(p.gatherIndex(n * L)).ToDevice(dev).Persist()
			p.eot = torch.FromSlice(p.layoutEOT()).ToDevice(dev).Persist()
			return nil
		})
	})
}

// encodeHandcrafted is the authors' text_mood=fix: every sentence (ids
// [n, L], normal then abnormal) through the text tower as CLIP encodes text
// (with the causal mask), each embedding L2-normalised, averaged per class,
// the mean L2-normalised: [2, E].
func (p *PromptLearner) encodeHandcrafted(text *clip.TextTransformer, ids, eot *torch.Tensor) *torch.Tensor {
	const chunk = 64 // bounds the activations of a few hundred sentences
	n := ids.Size(0)
	var parts []*torch.Tensor
	for lo := int64(0); lo < n; lo += chunk {
		k := min(chunk, n-lo)
		f := text.ForwardEmbeddings(text.Embed(ids.Narrow(0, lo, k)), eot.Narrow(0, lo, k), clip.CausalAttention)
		parts = append(parts, f.Normalize(-1, 0))
	}
	per := int64(len(p.prompts[0]))
	return torch.Cat(0, parts...).View(2, per, -1).MeanDims(torch.DropDims, 1).Normalize(-1, 0)
}

// gatherIndex maps every token of every assembled prompt (normal prompts
// first, each phrase's end, front and middle layouts in turn) to its row in
// [fixed token embeddings (nFixed rows); Ctx[0] flattened; Ctx[1] flattened].
func (p *PromptLearner) gatherIndex(nFixed int64) []int64 {
	var idx []int64
	ctxBase := nFixed
	fixedBase := int64(0)
	for c := range 2 {
		for i, pr := range p.prompts[c] {
			L := int64(len(pr.ids))
			for j, pos := range Positions() {
				first := ctxBase + int64((i*len(Positions())+j)*NumCtx)
				ctx, tok := int64(0), int64(1)+NumCtx // next context vector; next fixed token after "X×8"
				for _, id := range p.Layout(c, i, pos) {
					switch {
					case id < 0:
						idx = append(idx, first+ctx)
						ctx++
					case len(idx)%int(L) == 0: // the start token
						idx = append(idx, fixedBase)
					default:
						idx = append(idx, fixedBase+tok)
						tok++
					}
				}
			}
			fixedBase += L
		}
		ctxBase += int64(len(p.prompts[c]) * len(Positions()) * NumCtx)
	}
	return idx
}

// layoutEOT is the EOT position of each assembled prompt.
func (p *PromptLearner) layoutEOT() []int64 {
	var eot []int64
	for c := range 2 {
		for i := range p.prompts[c] {
			for _, pos := range Positions() {
				eot = append(eot, int64(slices.Index(p.Layout(c, i, pos), bpe.EOT)))
			}
		}
	}
	return eot
}

// Assemble returns the prompts' input embeddings [2·PromptCount, L, D] and
// their EOT positions [2·PromptCount]: normal prompts first, each phrase's
// end, front and middle layouts in turn; one gather over the frozen token
// embeddings and both classes' contexts.
func (p *PromptLearner) Assemble() (*torch.Tensor, *torch.Tensor) {
	if p.Handcrafted {
		return torch.Failed("prompts", "hand-crafted prompts have no learned layout to assemble"), nil
	}
	d := p.fixed.Size(1)
	dt := p.fixed.DType()
	src := torch.Cat(0, p.fixed, p.Ctx[0].ToDType(dt).Reshape(-1, d), p.Ctx[1].ToDType(dt).Reshape(-1, d))
	L := int64(len(p.prompts[0][0].ids))
	return src.IndexSelect(0, p.gather).View(-1, L, d), p.eot
}

// Free releases the frozen embeddings (the context vectors belong to the
// model's parameter store).
func (p *PromptLearner) Free() {
	p.fixed.Free()
	p.gather.Free()
	p.eot.Free()
	p.text.Free()
}
