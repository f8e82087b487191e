package clip

import (
	"madclip/model/param"
	"madclip/torch"
)

// TextTransformer is CLIP's text tower.
type TextTransformer struct {
	TokenEmbedding      *torch.Tensor // [V, D]
	PositionalEmbedding *torch.Tensor // [L, D]
	Transformer         *Transformer
	LnFinal             LayerNorm
	TextProjection      *torch.Tensor // [D, E]
}

func newTextTransformer(b *param.Builder, c Config, act Activation) *TextTransformer {
	d := int64(c.TextWidth)
	return &TextTransformer{
		TokenEmbedding:      b.Get("token_embedding.weight", param.Normal(0.02), int64(c.VocabSize), d),
		PositionalEmbedding: b.Get("positional_embedding", param.Normal(0.01), int64(c.ContextLength), d),
		Transformer:         newTransformer(b.Sub("transformer"), c.TextWidth, c.TextLayers, c.TextHeads, act),
		LnFinal:             newLayerNorm(b.Sub("ln_final"), d),
		TextProjection:      b.Get("text_projection", param.Normal(1/sqrt(float64(c.TextWidth))), d, int64(c.EmbedDim)),
	}
}

// Embed looks up token embeddings for ids [B, L] (int64): [B, L, D].
func (t *TextTransformer) Embed(ids *torch.Tensor) *torch.Tensor {
	return torch.Embedding(t.TokenEmbedding, ids)
}

// EOTIndex is the position of the end-of-text token in each row of ids
// [B, L]: the largest id, as OpenAI's code finds it.
func EOTIndex(ids *torch.Tensor) *torch.Tensor { return ids.Argmax(-1, torch.DropDims) }

// ForwardEmbeddings runs the tower on token embeddings x [B, L, D] (learned
// prompts enter here), with or without the causal mask, and returns the
// projected feature at each row's eot position (eot: int64 [B]): [B, E].
func (t *TextTransformer) ForwardEmbeddings(x, eot *torch.Tensor, mask AttnMask) *torch.Tensor {
	shape := x.Shape()
	if len(shape) != 3 {
		if err := x.Err(); err != nil {
			return x
		}
		return torch.Failed("clip text", "embeddings have shape %v, want [batch, tokens, width]", shape)
	}
	B, L, D := shape[0], shape[1], shape[2]
	if L != t.PositionalEmbedding.Size(0) {
		return torch.Failed("clip text", "%d tokens, the model takes %d", L, t.PositionalEmbedding.Size(0))
	}
	h := x.Add(t.PositionalEmbedding.CastAs(x))
	h, _ = t.Transformer.Forward(h, mask, nil)
	h = t.LnFinal.Forward(h)
	rows := torch.Arange(0, float64(B*L), float64(L), torch.Int64, eot.Device()).Add(eot)
	pooled := h.Reshape(B*L, D).IndexSelect(0, rows) // [B, D]
	return pooled.Matmul(t.TextProjection.CastAs(pooled))
}

// Forward encodes token ids [B, L] with the causal mask, as CLIP does: [B, E].
func (t *TextTransformer) Forward(ids *torch.Tensor) *torch.Tensor {
	return t.ForwardEmbeddings(t.Embed(ids), EOTIndex(ids), CausalAttention)
}
