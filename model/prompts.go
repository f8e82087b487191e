package model

import (
	"fmt"
	"strings"

	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
)

// ObjectWords maps the benchmark datasets to the word their prompts use.
var ObjectWords = map[string]string{
	"Brain":          "Brain",
	"Liver":          "Liver",
	"Retina_RESC":    "retinal OCT",
	"Retina_OCT2017": "retinal OCT",
	"Chest":          "Chest X-ray film",
	"Histopathology": "histopathological image",
}

// GenericObjectWord replaces the object word in the paper's ablation.
const GenericObjectWord = "medical image"

// State phrases; {} is the object word.
var (
	NormalPhrases   = []string{"{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect", "{} without damage"}
	AbnormalPhrases = []string{"damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage", "disease {}", "abnormal {}"}
)

// Position is where a prompt's learnable context sits around its phrase.
type Position int

// The three layouts (CoOp's class-token positions).
const (
	End    Position = iota // [SOT][ctx×8][phrase][.][EOT]
	Front                  // [SOT][phrase][ctx×8][.][EOT]
	Middle                 // [SOT][ctx×4][phrase][ctx×4][.][EOT]
)

// Positions lists the layouts in the order prompts are built.
var Positions = []Position{End, Front, Middle}

func (p Position) String() string {
	return [...]string{"end", "front", "middle"}[p]
}

// NumCtx is the number of learnable context vectors per prompt.
const NumCtx = 8

// PromptLearner holds, for each class (normal, abnormal) and each of its
// state phrases, NumCtx learnable context vectors at each position, and the
// frozen token embeddings of the prompts' fixed parts.
type PromptLearner struct {
	// Ctx[class][phrase][position] is [NumCtx, D].
	Ctx [2][][]*torch.Tensor
	// Handcrafted prompts have no context: the phrase alone ("{phrase}.").
	Handcrafted bool

	prompts [2][]prompt
	fixed   *torch.Tensor // [n, L, D] token embeddings of the prompts' token ids
	eot     *torch.Tensor // [n] int64, the EOT position of each prompt
}

// prompt is one prompt's token layout: the ids of "X×8 {phrase}." and the
// phrase's length in tokens.
type prompt struct {
	phrase    string
	ids       []int64 // padded to the context length
	phraseLen int
}

// PromptCount is the number of prompts per class.
func (p *PromptLearner) PromptCount() int {
	if p.Handcrafted {
		return len(p.prompts[0])
	}
	return len(p.prompts[0]) * len(Positions)
}

func newPromptLearner(b *clip.Builder, tk *bpe.Tokenizer, object string, width, context int, handcrafted bool) (*PromptLearner, error) {
	p := &PromptLearner{Handcrafted: handcrafted}
	xs := strings.TrimSpace(strings.Repeat("X ", NumCtx))
	for c, phrases := range [2][]string{NormalPhrases, AbnormalPhrases} {
		class := [2]string{"normal", "abnormal"}[c]
		for i, tmpl := range phrases {
			phrase := strings.ReplaceAll(tmpl, "{}", object)
			text := xs + " " + phrase + "."
			if handcrafted {
				text = phrase + "."
			}
			ids := tk.EncodeWithSpecials(text)
			if len(ids) > context {
				return nil, fmt.Errorf("prompt %q is %d tokens, longer than the %d-token context", text, len(ids), context)
			}
			padded := make([]int64, context)
			for j, id := range ids {
				padded[j] = int64(id)
			}
			p.prompts[c] = append(p.prompts[c], prompt{phrase: phrase, ids: padded, phraseLen: len(tk.Encode(phrase))})
			if handcrafted {
				continue
			}
			pb := b.Sub("prompts").Sub(class).Sub(fmt.Sprint(i))
			var row []*torch.Tensor
			for _, pos := range Positions {
				row = append(row, pb.Get(pos.String(), clip.InitNormal(0.02), NumCtx, int64(width)))
			}
			p.Ctx[c] = append(p.Ctx[c], row)
		}
	}
	return p, nil
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

// prepare embeds the fixed token ids once with the frozen token embedding.
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
			emb := text.Embed(t)
			if err := emb.Err(); err != nil {
				return err
			}
			p.fixed = s.Keep(emb).Persist()
			p.eot = s.Keep(torch.FromSlice(eot).ToDevice(dev)).Persist()
			return nil
		})
	})
}

// Assemble returns the prompts' input embeddings [2·PromptCount, L, D] and
// their EOT positions [2·PromptCount]: normal prompts first, each phrase's
// end, front and middle layouts in turn.
func (p *PromptLearner) Assemble() (*torch.Tensor, *torch.Tensor) {
	if p.Handcrafted {
		return p.fixed, p.eot
	}
	var rows, eots []*torch.Tensor
	k := int64(0)
	for c := range 2 {
		for i, pr := range p.prompts[c] {
			fixed := p.fixed.Select(0, k) // [L, D]
			L := fixed.Size(0)
			n := int64(pr.phraseLen)
			sot := fixed.Narrow(0, 0, 1)
			phrase := fixed.Narrow(0, 1+NumCtx, n)
			rest := fixed.Narrow(0, 1+NumCtx+n, L-1-NumCtx-n)
			eot := p.eot.Narrow(0, k, 1)
			for j, pos := range Positions {
				ctx := p.Ctx[c][i][j].ToDType(fixed.DType())
				var row *torch.Tensor
				switch pos {
				case End:
					row = torch.Cat(0, sot, ctx, phrase, rest)
				case Front:
					row = torch.Cat(0, sot, phrase, ctx, rest)
				case Middle:
					row = torch.Cat(0, sot, ctx.Narrow(0, 0, NumCtx/2), phrase, ctx.Narrow(0, NumCtx/2, NumCtx/2), rest)
				}
				rows = append(rows, row)
				eots = append(eots, eot)
			}
			k++
		}
	}
	return torch.Stack(0, rows...), torch.Cat(0, eots...)
}

// Free releases the frozen embeddings (the context vectors belong to the
// model's parameter store).
func (p *PromptLearner) Free() {
	p.fixed.Free()
	p.eot.Free()
}
