package main

import (
	"errors"
	"fmt"
	"image"
	"math"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"madclip/imaging"
	"madclip/internal/jsonpath"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/weights"
)

// clipPreprocess is OpenAI's CLIP preprocessing: the shorter side resized
// to px with PIL's bicubic filter, a centre crop, values in [0, 1], then
// CLIP's mean and std. It returns [3, px, px].
func clipPreprocess(m *imaging.RGB, px int) ([]float32, error) {
	w, h := px, px
	if m.W < m.H {
		h = int(float64(px) * float64(m.H) / float64(m.W))
	} else {
		w = int(float64(px) * float64(m.W) / float64(m.H))
	}
	// The crop alone is resized: a scan far longer than wide would be
	// millions of pixels long at this width.
	r := imaging.CenterRect(w, h, px, px)
	if !r.In(image.Rect(0, 0, w, h)) {
		return nil, fmt.Errorf("a %dx%d image cannot be cropped to %dx%d", m.W, m.H, px, px)
	}
	v := m.ResizeCrop(w, h, r).CHW()
	n := px * px
	mean, std := clip.MeanStd()
	for ch := range 3 {
		for i := range n {
			v[ch*n+i] = (v[ch*n+i] - mean[ch]) / std[ch]
		}
	}
	return v, nil
}

func deviceFlag() cli.Flag {
	return &cli.StringFlag{Name: "device", Value: "auto", Usage: "cpu, cuda, cuda:N, or auto (the first GPU if any)"}
}

func clipCommand() *cli.Command {
	return &cli.Command{
		Name:  "clip",
		Usage: "standard CLIP zero-shot scoring, to check your weights",
		Description: `Scores each image against the texts with plain CLIP (QuickGELU, causal text
mask, OpenAI's preprocessing and normalisation) and prints the softmax over
the texts. --json prints the L2-normalised embeddings, the logits and the
probabilities as one JSON object.

Examples:
  madclip clip --image cat.png --text "a photo of a cat" --text "a photo of a dog"
  madclip clip --weights ViT-B-32.safetensors --image a.png --image b.jpg --text "a scan" --json`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "weights", Usage: "CLIP weights (.safetensors; default: the largest known model found)"},
			vocabFlag(),
			&cli.StringSliceFlag{Name: "image", Usage: "an image (PNG or JPEG); repeat for more", Required: true},
			&cli.StringSliceFlag{Name: "text", Usage: "a text to score against; repeat for more", Required: true},
			&cli.BoolFlag{Name: "json", Usage: "print embeddings, logits and probabilities as JSON"},
			deviceFlag(),
		}, decodeFlags()...),
		Action: clipAction,
	}
}

type clipResult struct {
	// What was scored: the images (in the rows' order), the texts (in the
	// columns'), and the weights with their digest.
	Images        []jsonpath.Path `json:"images"`
	Texts         []string        `json:"texts"`
	Weights       jsonpath.Path   `json:"weights"`
	WeightsDigest string          `json:"weights_digest"`

	ImageEmbeds    [][]float32 `json:"image_embeds"`
	TextEmbeds     [][]float32 `json:"text_embeds"`
	LogitsPerImage [][]float32 `json:"logits_per_image"`
	Probs          [][]float32 `json:"probs"`
}

func clipAction(c *cli.Context) error {
	images, texts := c.StringSlice("image"), c.StringSlice("text")
	wpath, err := findWeights(c.String("weights"))
	if err != nil {
		return err
	}
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	for _, t := range texts {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("clip: --text %q is empty; give words to score the images against", t)
		}
		// OpenAI's clip.tokenize refuses these too: cut to fit, the text
		// would be scored without its end.
		if n := len(tk.EncodeWithSpecials(t)); n > bpe.ContextLength {
			return fmt.Errorf("clip: --text %.40q is %d tokens with its start and end marks; CLIP reads at most %d", t, n, bpe.ContextLength)
		}
	}
	var res clipResult
	digest := ""
	if c.Bool("json") {
		// The digest --json reports, taken first: it refuses weights
		// holding NaN, naming the tensor, before they are run.
		if digest, err = weights.Digest(wpath); err != nil {
			return err
		}
	}
	err = onCompute(func() error {
		dev, err := deviceFromFlag(c)
		if err != nil {
			return err
		}
		m, err := clip.Load(wpath, clip.Options{Device: dev})
		if err != nil {
			return err
		}
		defer m.Free()
		px := m.Config.ImageSize
		var pix []float32
		for _, p := range images {
			img, err := imaging.LoadLimit(p, decodeLimits(c))
			if err != nil {
				return err
			}
			v, err := clipPreprocess(img, px)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			pix = append(pix, v...)
		}
		res, err = scoreCLIP(m, tk, pix, len(images), texts, dev)
		if errors.Is(err, errNaNOutput) {
			return fmt.Errorf("clip: the weights %s: %w", wpath, err)
		}
		return err
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		for _, p := range images {
			res.Images = append(res.Images, jsonpath.Path(p))
		}
		res.Texts, res.Weights, res.WeightsDigest = texts, jsonpath.Path(absPath(wpath)), digest
		b, err := marshalJSON(res, "")
		if err == nil {
			_, err = fmt.Fprintln(c.App.Writer, string(b))
		}
		return err
	}
	for i, p := range images {
		fmt.Fprintln(c.App.Writer, oneLine(p))
		order := make([]int, len(texts))
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(a, b int) bool { return res.Probs[i][order[a]] > res.Probs[i][order[b]] })
		for _, j := range order {
			fmt.Fprintf(c.App.Writer, "  %6.2f%%  %s\n", 100*res.Probs[i][j], oneLine(texts[j]))
		}
	}
	return nil
}

// scoreCLIP runs both towers and CLIP's scaled cosine similarities.
func scoreCLIP(m *clip.Model, tk *bpe.Tokenizer, pix []float32, n int, texts []string, dev torch.Device) (clipResult, error) {
	var res clipResult
	err := torch.Scoped(func(s *torch.Scope) error {
		px := int64(m.Config.ImageSize)
		x := torch.FromSlice(pix, int64(n), 3, px, px).ToDevice(dev)
		ids := make([]int64, 0, len(texts)*m.Config.ContextLength)
		for _, t := range texts {
			ids = append(ids, tk.Tokenize(t, m.Config.ContextLength)...)
		}
		tid := torch.FromSlice(ids, int64(len(texts)), int64(m.Config.ContextLength)).ToDevice(dev)
		// The images a batch at a time, each batch's activations freed
		// with its scope: memory does not grow with their number.
		var embeds []*torch.Tensor
		for lo := int64(0); lo < int64(n); lo += clipBatch {
			err := torch.Scoped(func(inner *torch.Scope) error {
				e := m.EncodeImage(x.Narrow(0, lo, min(clipBatch, int64(n)-lo)))
				inner.Keep(e)
				embeds = append(embeds, e)
				return e.Err()
			})
			if err != nil {
				return err
			}
		}
		img := torch.Cat(0, embeds...)
		txt := m.EncodeText(tid)
		logits := m.Logits(img, txt)
		var err error
		if res.ImageEmbeds, err = rows(img.Normalize(-1, 0)); err != nil {
			return err
		}
		if res.TextEmbeds, err = rows(txt.Normalize(-1, 0)); err != nil {
			return err
		}
		if res.LogitsPerImage, err = rows(logits); err != nil {
			return err
		}
		res.Probs, err = rows(logits.Softmax(-1))
		return err
	})
	return res, err
}

// clipBatch is how many images clip encodes at once.
const clipBatch = 16

// errNaNOutput is CLIP's output holding NaN: its weights are corrupt.
var errNaNOutput = errors.New("the model produced NaN (corrupt weights?)")

// rows copies a 2-D tensor into Go rows.
func rows(t *torch.Tensor) ([][]float32, error) {
	v, err := t.Float32s()
	if err != nil {
		return nil, err
	}
	shape := t.Shape()
	out := make([][]float32, shape[0])
	for i := range out {
		out[i] = v[i*int(shape[1]) : (i+1)*int(shape[1])]
		for _, x := range out[i] {
			if math.IsNaN(float64(x)) {
				return nil, errNaNOutput
			}
		}
	}
	return out, nil
}
