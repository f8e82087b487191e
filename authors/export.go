package authors

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/checkpoint"
	"madclip/internal/jsonpath"
	"madclip/internal/shellquote"
	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
)

// Export writes the madclip checkpoint ckPath as the dict the authors'
// test.py loads (torch.save's format), atomically to out. weightsPath is the
// CLIP the checkpoint was trained on (default: the file it records); its text
// encoder is copied in, as their prompt makers hold one. It returns the
// checkpoint's description, for the options their test.py needs, with the
// weights file it ran on now. It runs on the compute thread.
func Export(ckPath, weightsPath, out string, tk *bpe.Tokenizer) (checkpoint.Meta, error) {
	var meta checkpoint.Meta
	err := torch.Scoped(func(s *torch.Scope) error {
		ck, err := checkpoint.Load(ckPath, torch.CPU)
		if err != nil {
			return err
		}
		defer ck.Free()
		meta = ck.Meta
		if meta.Partial() {
			return fmt.Errorf("%s: training did not finish (interrupted at %s); finish it with madclip train --resume %s", ckPath, meta.StoppedAt(), shellquote.Path(ckPath))
		}
		if err := exportable(meta); err != nil {
			return fmt.Errorf("%s: %w", ckPath, err)
		}
		backbone, used, err := ck.OpenBackbone(weightsPath, torch.CPU)
		if err != nil {
			return err
		}
		if used != "" { // the weights it runs on now, for the command that reads the file back
			if abs, err := filepath.Abs(used); err == nil {
				used = abs
			}
			meta.Backbone.File = jsonpath.Path(used)
		}
		defer backbone.Free()
		m, err := ck.Model(backbone, tk)
		if err != nil {
			return err
		}
		defer m.Free()
		entries := theirEntries(m, backbone)
		b, err := torch.PickleDicts(entries)
		if err == nil {
			b, err = authorship.MarkZip(b)
		}
		if err != nil {
			return fmt.Errorf("export %s: %w", out, err)
		}
		return atomicfile.Write(out, 0o644, func(w io.Writer) error {
			_, err := w.Write(b)
			return err
		})
	})
	return meta, err
}

// exportable refuses what the authors' code cannot run.
func exportable(meta checkpoint.Meta) error {
	o := meta.Model
	for _, c := range []struct {
		set  bool
		flag string
	}{
		{o.QuickGELU, "--quick-gelu"}, {o.CausalPrompts, "--causal-prompts"}, {o.MeanStd, "--mean-std"},
		{o.SharedAdapters, "--shared-adapters"}, {o.CommonHead, "--common-head"}, {o.NoSubtraction, "--no-subtraction"},
	} {
		if c.set {
			return fmt.Errorf("trained with %s, which the authors' code has no option for", c.flag)
		}
	}
	word := o.Object
	if o.GenericObject {
		word = model.GenericObjectWord
	}
	if want, ok := model.ObjectWord(meta.Dataset); !ok || word != want {
		return fmt.Errorf("its prompts use the object word %q; the authors' test.py builds prompts with its dataset's word, and knows only %s",
			word, strings.Join(benchmarkWords(), ", "))
	}
	return nil
}

func benchmarkWords() []string {
	var out []string
	for name, w := range model.ObjectWords() {
		out = append(out, fmt.Sprintf("%s (%q)", name, w))
	}
	slices.Sort(out)
	return out
}

// theirEntries lays the model's tensors out as the authors' dict.
func theirEntries(m *model.MadCLIP, backbone *clip.Model) []torch.Entry {
	var e []torch.Entry
	for b := range 2 {
		for li, a := range m.Adapters[b] {
			e = append(e,
				torch.Entry{Group: adapterGroups[b], Name: fmt.Sprintf("%d.fc1.0.weight", li), Tensor: a.FC1.Weight},
				torch.Entry{Group: adapterGroups[b], Name: fmt.Sprintf("%d.fc2.0.weight", li), Tensor: a.Det.Weight},
				torch.Entry{Group: adapterGroups[b], Name: fmt.Sprintf("%d.fc3.0.weight", li), Tensor: a.Seg.Weight})
		}
	}
	if m.Prompts.Handcrafted {
		return append(e, torch.Entry{Name: fixedText, Tensor: m.TextFeatures().Transpose(0, 1).Contiguous()})
	}
	for c := range 2 {
		for j, pos := range model.Positions() {
			e = append(e, torch.Entry{Group: promptGroups[c], Name: ctxName(c, pos), Tensor: m.Prompts.Ctx[c].Select(1, int64(j))})
		}
		for _, name := range backbone.Params().Names() {
			if isTextEncoder(name) {
				t, _ := backbone.Params().Get(name)
				e = append(e, torch.Entry{Group: promptGroups[c], Name: textEncoder + name, Tensor: t.ToDType(torch.Float32)})
			}
		}
	}
	return e
}

// isTextEncoder reports whether a CLIP weight belongs to the text encoder
// the authors' prompt makers hold (their TextEncoder: the transformer, the
// positional embedding, ln_final and the projection; not the token
// embedding).
func isTextEncoder(name string) bool {
	switch name {
	case "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection":
		return true
	}
	return strings.HasPrefix(name, "transformer.")
}
