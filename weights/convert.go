package weights

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/internal/regularfile"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/torch/safetensors"
)

// extras are the non-weight entries of OpenAI's TorchScript archives and
// Hugging Face's position-id buffers, dropped on conversion.
var extras = map[string]bool{"input_resolution": true, "context_length": true, "vocab_size": true}

// Convert reads CLIP weights in any supported layout and writes them as
// safetensors with OpenAI's tensor names, each tensor in its stored dtype:
// OpenAI's TorchScript archives, torch.save state dicts (.pt/.pth/.bin,
// nested under "state_dict" or "model" too), and Hugging Face CLIP checkpoints
// (model.safetensors or pytorch_model.bin). The result is checked to be a
// complete CLIP before anything is written; vocab, when not empty, is copied
// next to out.
//
// An OUT named as a known release's file (ViT-L-14-336px.safetensors) must
// hold that release's architecture: the search for default weights goes by
// that name, and would find another CLIP under it.
func Convert(in, out, vocab string) (clip.Config, error) {
	var want *clip.Config
	if m, ok := NamedFile(filepath.Base(out)); ok {
		cfg, _ := clip.Preset(m.Name)
		want = &cfg
	}
	return convert(in, out, vocab, want, "")
}

// ConvertAs is Convert for a file that must be the CLIP called name (a
// known release): another architecture is refused before anything is
// written, so a mirror cannot put a small model under a large one's name.
// inSum, the SHA-256 of in (a download's, checked), is recorded in out's
// metadata (SourceSHA256Key), so that the same download need not be
// fetched again.
func ConvertAs(in, out, name, inSum string) (clip.Config, error) {
	want, ok := clip.Preset(name)
	if !ok {
		return clip.Config{}, fmt.Errorf("convert %s: %q is not a known CLIP", in, name)
	}
	return convert(in, out, "", &want, inSum)
}

// SourceSHA256Key names, in converted weights' metadata, the SHA-256 of
// the file they were converted from, when known (weights download).
const SourceSHA256Key = "source_sha256"

// ConvertedFrom is the SHA-256 of the file the weights at path were
// converted from, as their metadata records it ("" when it does not, or
// when the file is not madclip's converted weights).
func ConvertedFrom(path string) string {
	f, err := safetensors.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if f.Metadata["converted_by"] != "madclip" {
		return ""
	}
	return f.Metadata[SourceSHA256Key]
}

// ErrContent marks a conversion refused for what its input holds (not a
// PyTorch or safetensors file, not a complete CLIP, not the CLIP named), as
// opposed to one that failed to write: trying the same file again cannot
// help.
var ErrContent = errors.New("the input cannot be converted")

// contentError is an error of the input's content: its message, and
// ErrContent for errors.Is.
type contentError struct{ error }

func (e contentError) Unwrap() []error { return []error{e.error, ErrContent} }

// CheckInput is Convert's quick first look at in, for a message before
// the long read: a file that is neither safetensors (by its name) nor a zip
// archive as torch.save and TorchScript write is refused, saying what it is.
func CheckInput(in string) error {
	if !strings.HasSuffix(in, ".safetensors") {
		if err := torch.CheckArchive(in); err != nil {
			return contentError{err}
		}
		return nil
	}
	f, err := safetensors.Open(in)
	if err != nil {
		return contentError{fmt.Errorf("load %w", err)}
	}
	return f.Close()
}

func convert(in, out, vocab string, want *clip.Config, inSum string) (clip.Config, error) {
	var cfg clip.Config
	// The vocab and both destinations are checked before anything is
	// written: a file that is not a CLIP BPE vocab never replaces a good
	// one, a missing one fails before OUT is written, and so does a
	// destination that is not madclip's to replace.
	vocabDst := ""
	if vocab != "" {
		if _, err := bpe.Load(vocab); err != nil {
			return cfg, fmt.Errorf("--vocab: %w", err)
		}
		if vocabDst = VocabCopy(vocab, out); vocabDst != "" {
			if _, _, err := atomicfile.Destination(vocabDst, authorship.None); err != nil {
				return cfg, fmt.Errorf("copy vocab: %w", err)
			}
		}
	}
	if _, _, err := atomicfile.Destination(out, authorship.Weights); err != nil {
		return cfg, err
	}
	err := torch.Scoped(func(s *torch.Scope) error { // frees every tensor made here
		var src map[string]*torch.Tensor
		var err error
		if strings.HasSuffix(in, ".safetensors") {
			src, _, err = torch.LoadSafetensors(in, torch.CPU, torch.SameDType)
		} else {
			src, err = torch.LoadArchive(in)
		}
		if err != nil {
			return contentError{err}
		}
		w, err := ToOpenAINames(src)
		if err == nil {
			cfg, err = Check(w)
		}
		if err != nil {
			if authorship.HoldsAuthorsCheckpoint(slices.Collect(maps.Keys(src))) {
				return contentError{fmt.Errorf("convert %s: the authors' MadCLIP checkpoint, not CLIP weights: madclip import authors turns it into a madclip checkpoint", in)}
			}
			return contentError{fmt.Errorf("convert %s: %w", in, err)}
		}
		if want != nil && cfg != *want {
			return contentError{fmt.Errorf("convert %s: not the CLIP expected: it holds %d px, patch %d, width %d, %d layers, where %s names one of %d px, patch %d, width %d, %d layers; nothing was written",
				in, cfg.ImageSize, cfg.PatchSize, cfg.VisionWidth, cfg.VisionLayers, filepath.Base(out), want.ImageSize, want.PatchSize, want.VisionWidth, want.VisionLayers)}
		}
		if err := allFinite(w); err != nil { // a damaged archive can load as garbage
			return contentError{fmt.Errorf("convert %s: %w; nothing was written", in, err)}
		}
		meta := map[string]string{"format": "pt", "source": filepath.Base(in), "converted_by": "madclip"}
		if inSum != "" {
			meta[SourceSHA256Key] = strings.ToLower(inSum)
		}
		return torch.SaveSafetensors(out, w, meta)
	})
	if err != nil {
		return clip.Config{}, err
	}
	if vocabDst != "" {
		if err := copyFile(vocab, vocabDst); err != nil {
			return clip.Config{}, err
		}
	}
	return cfg, nil
}

// allFinite refuses weights with a tensor holding NaN or infinity: no CLIP
// has one, and a damaged archive (a record shorter than its tensor) can
// load as garbage that does.
func allFinite(w map[string]*torch.Tensor) error {
	for _, name := range slices.Sorted(maps.Keys(w)) {
		in, err := w[name].Info()
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		if !in.DType.IsFloat() {
			continue
		}
		b, err := w[name].Bytes(in.DType)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		if nonFinite(string(torch.SafetensorsDType(in.DType)), b) {
			return fmt.Errorf("tensor %s %w", name, errNonFinite)
		}
	}
	return nil
}

// Check infers the architecture of weights with OpenAI's names and checks
// that they are exactly that CLIP: no tensor missing, extra or misshaped.
func Check(w map[string]*torch.Tensor) (clip.Config, error) {
	shapes := make(map[string][]int64, len(w))
	for k, t := range w {
		shapes[k] = t.Shape()
	}
	cfg, err := clip.ConfigFromShapes(shapes)
	if err != nil {
		return clip.Config{}, err
	}
	if err := clip.FloatingPoint(w); err != nil {
		return clip.Config{}, err
	}
	want := clip.ExpectedShapes(cfg)
	var missing, unexpected, misshaped []string
	for n, ws := range want {
		got, ok := shapes[n]
		switch {
		case !ok:
			missing = append(missing, n)
		case fmt.Sprint(got) != fmt.Sprint(ws):
			misshaped = append(misshaped, fmt.Sprintf("%s %v (want %v)", n, got, ws))
		}
	}
	for n := range shapes {
		if _, ok := want[n]; !ok {
			unexpected = append(unexpected, n)
		}
	}
	var parts []string
	for _, p := range []struct {
		what  string
		names []string
	}{{"missing", missing}, {"unexpected", unexpected}, {"misshaped", misshaped}} {
		if len(p.names) > 0 {
			sort.Strings(p.names)
			parts = append(parts, p.what+" "+strings.Join(head(p.names), ", "))
		}
	}
	if len(parts) > 0 {
		return clip.Config{}, fmt.Errorf("not a complete CLIP: %s", strings.Join(parts, "; "))
	}
	return cfg, nil
}

func head(s []string) []string {
	if len(s) > 6 {
		return append(s[:6:6], fmt.Sprintf("... %d more", len(s)-6))
	}
	return s
}

var hfLayer = regexp.MustCompile(`^(text|vision)_model\.encoder\.layers\.(\d+)\.(.+)$`)

// ToOpenAINames renames a state dict to OpenAI's names: a shared "state_dict."
// or "model." prefix is dropped, Hugging Face names are mapped (q/k/v merged
// into the packed in-projection, projections transposed), and the extras are
// dropped. The returned tensors are new references or the inputs themselves.
func ToOpenAINames(src map[string]*torch.Tensor) (map[string]*torch.Tensor, error) {
	src = stripPrefix(src)
	hf := false
	for k := range src {
		if strings.HasPrefix(k, "vision_model.") || strings.HasPrefix(k, "text_model.") {
			hf = true
			break
		}
	}
	out := map[string]*torch.Tensor{}
	if !hf {
		for k, t := range src {
			if !extras[k] {
				out[k] = t
			}
		}
		return out, nil
	}
	qkv := map[string]map[string]*torch.Tensor{} // openai prefix + kind → q/k/v
	for k, t := range src {
		name, err := hfName(k)
		if err != nil {
			return nil, err
		}
		switch {
		case name == "":
			continue
		case strings.HasSuffix(name, "#q") || strings.HasSuffix(name, "#k") || strings.HasSuffix(name, "#v"):
			base, part := name[:len(name)-2], name[len(name)-1:]
			if qkv[base] == nil {
				qkv[base] = map[string]*torch.Tensor{}
			}
			qkv[base][part] = t
		case name == "text_projection" || name == "visual.proj":
			out[name] = t.Transpose(0, 1).Contiguous()
		default:
			out[name] = t
		}
	}
	for base, parts := range qkv {
		if parts["q"] == nil || parts["k"] == nil || parts["v"] == nil {
			return nil, fmt.Errorf("%s: q, k and v projections are not all present", base)
		}
		out[base] = torch.Cat(0, parts["q"], parts["k"], parts["v"])
		if err := out[base].Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", base, err)
		}
	}
	return out, nil
}

// hfName maps one Hugging Face name to OpenAI's ("" to drop it; a "#q",
// "#k" or "#v" suffix marks a part of the packed projection).
func hfName(k string) (string, error) {
	fixed := map[string]string{
		"text_model.embeddings.token_embedding.weight":      "token_embedding.weight",
		"text_model.embeddings.position_embedding.weight":   "positional_embedding",
		"text_model.final_layer_norm.weight":                "ln_final.weight",
		"text_model.final_layer_norm.bias":                  "ln_final.bias",
		"text_projection.weight":                            "text_projection",
		"vision_model.embeddings.class_embedding":           "visual.class_embedding",
		"vision_model.embeddings.patch_embedding.weight":    "visual.conv1.weight",
		"vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
		"vision_model.pre_layrnorm.weight":                  "visual.ln_pre.weight",
		"vision_model.pre_layrnorm.bias":                    "visual.ln_pre.bias",
		"vision_model.post_layernorm.weight":                "visual.ln_post.weight",
		"vision_model.post_layernorm.bias":                  "visual.ln_post.bias",
		"visual_projection.weight":                          "visual.proj",
		"logit_scale":                                       "logit_scale",
		"text_model.embeddings.position_ids":                "",
		"vision_model.embeddings.position_ids":              "",
	}
	if v, ok := fixed[k]; ok {
		return v, nil
	}
	m := hfLayer.FindStringSubmatch(k)
	if m == nil {
		return "", fmt.Errorf("unknown Hugging Face CLIP tensor %s", k)
	}
	prefix := "transformer.resblocks." + m[2] + "."
	if m[1] == "vision" {
		prefix = "visual." + prefix
	}
	rest := m[3]
	parts := map[string]string{
		"layer_norm1.": "ln_1.", "layer_norm2.": "ln_2.", "mlp.fc1.": "mlp.c_fc.", "mlp.fc2.": "mlp.c_proj.",
		"self_attn.out_proj.": "attn.out_proj.",
	}
	for from, to := range parts {
		if strings.HasPrefix(rest, from) {
			return prefix + to + strings.TrimPrefix(rest, from), nil
		}
	}
	for _, p := range []string{"q", "k", "v"} {
		if r, ok := strings.CutPrefix(rest, "self_attn."+p+"_proj."); ok {
			return prefix + "attn.in_proj_" + r + "#" + p, nil
		}
	}
	return "", fmt.Errorf("unknown Hugging Face CLIP tensor %s", k)
}

// stripPrefix drops a "state_dict." or "model." prefix shared by every name.
func stripPrefix(src map[string]*torch.Tensor) map[string]*torch.Tensor {
	for _, p := range []string{"state_dict.", "model."} {
		all := len(src) > 0
		for k := range src {
			if !strings.HasPrefix(k, p) {
				all = false
				break
			}
		}
		if all {
			out := make(map[string]*torch.Tensor, len(src))
			for k, t := range src {
				out[strings.TrimPrefix(k, p)] = t
			}
			return out
		}
	}
	return src
}

func copyFile(src, dst string) error {
	in, err := regularfile.Open(src)
	if err != nil {
		return fmt.Errorf("copy vocab: %w", err)
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// VocabCopy is where converting to out copies vocab (beside out), or ""
// when that file already holds the same bytes and nothing is written. A
// vocab carries no mark, so a different file there is not madclip's to
// replace.
func VocabCopy(vocab, out string) string {
	dst := filepath.Join(filepath.Dir(out), VocabFile)
	if same, _ := sameBytes(vocab, dst); same {
		return ""
	}
	return dst
}

// sameBytes says whether the regular files a and b hold the same bytes.
func sameBytes(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil || !sb.Mode().IsRegular() || sa.Size() != sb.Size() {
		return false, err
	}
	ha, err := FileSHA256(a)
	if err != nil {
		return false, err
	}
	hb, err := FileSHA256(b)
	return err == nil && ha == hb, err
}
