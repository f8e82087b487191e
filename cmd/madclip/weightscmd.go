package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"madclip/authorship"
	"madclip/checkpoint"
	"madclip/internal/regularfile"
	"madclip/model/clip/bpe"
	"madclip/torch/safetensors"
	"madclip/weights"
)

func weightsCommand() *cli.Command {
	return &cli.Command{
		Name:  "weights",
		Usage: "list, download and convert CLIP weights",
		Description: `Weights are looked for in $MADCLIP_WEIGHTS, ./weights and the per-user cache
(` + filepath.Join("$XDG_CACHE_HOME", "madclip") + `, by default ~/.cache/madclip); downloads go to
$MADCLIP_WEIGHTS when set, else to the cache.

Examples:
  madclip weights list
  madclip weights download ViT-L/14-336
  madclip weights convert ViT-L-14-336px.pt ViT-L-14-336px.safetensors`,
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "the known models and where they are",
				Description: `Lists the CLIP models madclip knows: the name to download them by, the
file name looked for in the weights folders, and where that file was found
(with its size) or "not downloaded"; a file there that is not that model
(another CLIP, a checkpoint, or no CLIP) is marked as refused (commands that
take the default refuse it until it is renamed), and a pipe, device or folder
there as not used.

Examples:
  madclip weights list`,
				Action: func(c *cli.Context) error {
					var dirs []string
					for _, d := range weights.Dirs() {
						if !filepath.IsAbs(d) {
							d = "." + string(filepath.Separator) + d // not a word: the folder where madclip runs
						}
						dirs = append(dirs, d)
					}
					fmt.Fprintf(c.App.Writer, "search path: %s\n", oneLine(strings.Join(dirs, ", ")))
					for _, m := range weights.Known() {
						fmt.Fprintf(c.App.Writer, "%-14s %-28s %s\n", m.Name, m.File(), whereWeights(m))
					}
					return nil
				},
			},
			{
				Name:  "path",
				Usage: "print the weights file commands use by default (exit 1 when there is none)",
				Description: `Prints the weights file train, bench, import and clip use when --weights is
not given: the largest known model found in the weights folders. (predict and
eval take the file their checkpoint records, or one with its digest.)

Examples:
  madclip weights path`,
				Action: func(c *cli.Context) error {
					p, err := searchWeights()
					if err != nil {
						return fmt.Errorf("weights path: %w", err)
					}
					fmt.Fprintln(c.App.Writer, p)
					return nil
				},
			},
			weightsConvertCommand(),
			{
				Name:      "download",
				Usage:     "fetch a known CLIP from OpenAI, verify it and convert it",
				ArgsUsage: "NAME",
				Description: `Downloads with a progress bar, checks the SHA-256 that is part of OpenAI's URL,
resumes an interrupted download, converts to safetensors and removes the
original. --url and --sha256 fetch from a mirror instead. Nothing else is
fetched: CLIP's BPE vocab is built in.

Examples:
  madclip weights download ViT-L/14-336
  madclip weights download --dir ./weights ViT-B/16
  madclip weights download --url https://mirror.example/ViT-L-14-336px.pt --sha256 3035c92b... ViT-L/14-336`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dir", Usage: "where to put the weights (default: $MADCLIP_WEIGHTS or the user cache)"},
					&cli.StringFlag{Name: "url", Usage: "download from this URL instead of OpenAI's"},
					&cli.StringFlag{Name: "sha256", Usage: "the expected SHA-256 with --url"},
					&cli.BoolFlag{Name: "keep", Usage: "keep the downloaded original next to the converted file"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress output (the result still shows)"},
				},
				Action: downloadAction,
			},
		},
	}
}

func downloadAction(c *cli.Context) (err error) {
	if c.NArg() != 1 {
		return fmt.Errorf("weights download: want one NAME (known: %s)", knownNames())
	}
	m, err := weights.Lookup(c.Args().First())
	if err != nil {
		return err
	}
	dir := c.String("dir")
	if dir == "" {
		dir = weights.DefaultDir()
	}
	out := filepath.Join(dir, m.File()) // named after the model, wherever it comes from
	if u := c.String("url"); u != "" {
		if c.String("sha256") == "" {
			return fmt.Errorf("weights download: --url needs --sha256")
		}
		m.URL, m.SHA256 = u, c.String("sha256")
	} else if sum := c.String("sha256"); sum != "" && !strings.EqualFold(sum, m.SHA256) {
		return fmt.Errorf("weights download: --sha256 goes with --url; %s is checked against its built-in SHA-256 %s", m.Name, m.SHA256)
	}
	// OUT is checked before the download, not after it, as every output is
	// (never into a dataset's folder, never over a file madclip did not write).
	if err := checkOutputs([]namedPath{{role: "the converted weights", path: out, kind: authorship.Weights}}, nil); err != nil {
		return fmt.Errorf("weights download: %w", err)
	}
	// Weights converted from this very download are kept, not fetched
	// again (a second run of the same command).
	if strings.EqualFold(weights.ConvertedFrom(out), m.SHA256) && weights.CheckNamed(out, m) == nil {
		fmt.Fprintf(c.App.Writer, "%s ready: %s (already there, converted from the file of SHA-256 %s…)\n", m.Name, oneLine(out), strings.ToLower(m.SHA256)[:12])
		return nil
	}
	// The folders made for the weights go again if the download fails.
	var made madeFolders
	if err := made.mkdirAll(dir); err != nil {
		return fmt.Errorf("weights download: %w", err)
	}
	defer func() {
		if err != nil {
			made.removeEmpty()
		}
	}()
	prog := newByteProgress(c.Bool("quiet"))
	raw := strings.TrimSuffix(out, ".safetensors") + ".download" + filepath.Ext(m.URL)
	_, statErr := os.Lstat(raw)
	keptBefore := statErr == nil // an original an earlier --keep left stays
	if err := weights.Download(c.Context, m.URL, m.SHA256, raw, weights.DownloadOptions{Progress: prog, MaxBytes: m.MaxBytes()}); err != nil {
		return err
	}
	err = onCompute(func() error {
		if !c.Bool("quiet") {
			fmt.Fprintf(os.Stderr, "converting %s (%s) to %s\n", oneLine(raw), sizeOf(raw), oneLine(out))
		}
		_, err := weights.ConvertAs(raw, out, m.Name, m.SHA256)
		return err
	})
	if err := settleOriginal(raw, c.Bool("keep") || keptBefore, err); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s ready: %s\n", m.Name, oneLine(out))
	return nil
}

// settleOriginal decides the fate of the downloaded original raw once its
// conversion has run and ended in convErr. Unless kept (--keep, or an
// original already there before this run) it is removed after a
// conversion, and also when its content cannot convert, since every retry
// would fail alike; when the conversion failed to write, it stays for the
// next try.
func settleOriginal(raw string, keep bool, convErr error) error {
	switch {
	case keep && convErr != nil:
		return fmt.Errorf("%w (the download stays as %s: kept)", convErr, raw)
	case keep:
	case convErr == nil:
		os.Remove(raw)
	case errors.Is(convErr, weights.ErrContent):
		os.Remove(raw)
		return fmt.Errorf("%w (the download is removed)", convErr)
	}
	return convErr
}

func knownNames() string {
	var n []string
	for _, m := range weights.Known() {
		n = append(n, m.Name)
	}
	return strings.Join(n, ", ")
}

// errNoWeights is findWeights' error when no weights were given or found.
var errNoWeights = errors.New("no CLIP weights given")

// whereWeights says, for weights list, where the release m's file is and
// whether commands take it: its size, or why it is refused (another CLIP
// under m's name, a checkpoint, no CLIP, not a regular file), or "not
// downloaded"; a folder under its name is named, not passed over unsaid.
func whereWeights(m weights.Model) string {
	p, err := weights.Find(m.File())
	if err != nil {
		for _, d := range weights.Dirs() {
			if st, err := os.Stat(filepath.Join(d, m.File())); err == nil && st.IsDir() {
				return fmt.Sprintf("%s (a folder: not used)", oneLine(filepath.Join(d, m.File())))
			}
		}
		return "not downloaded"
	}
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return fmt.Sprintf("%s (not a regular file: not used)", oneLine(p))
	}
	if weights.CheckNamed(p, m) == nil {
		return fmt.Sprintf("%s (%s)", oneLine(p), sizeOf(p))
	}
	why := fmt.Sprintf("not %s's architecture", m.Name)
	if _, err := weights.ConfigOf(p); errors.Is(err, authorship.ErrCheckpointAsWeights) {
		why = "a madclip checkpoint, not CLIP weights"
	} else if err != nil {
		why = "not CLIP weights"
	}
	return fmt.Sprintf("%s (%s; %s: refused, rename it)", oneLine(p), sizeOf(p), why)
}

// findWeights returns --weights, or the first known model found in the
// weights folders.
func findWeights(explicit string) (string, error) {
	if explicit != "" {
		// Its header now, before minutes of other work: a torch.save file
		// or a truncated one is named at once.
		f, err := safetensors.Open(explicit)
		if err != nil {
			return "", fmt.Errorf("--weights %w", err)
		}
		kind := authorship.MetadataKind(f.Metadata)
		f.Close()
		if kind == authorship.Checkpoint {
			return "", authorship.CheckpointAsWeights("--weights", explicit)
		}
		return explicit, nil
	}
	p, err := searchWeights()
	if err != nil {
		return "", fmt.Errorf("%w (--weights) and %w", errNoWeights, err)
	}
	return p, nil
}

// searchWeights finds the largest known model in the weights folders.
func searchWeights() (string, error) {
	var looked []string
	known := weights.Known()
	slices.Reverse(known) // the largest model first
	for _, m := range known {
		p, err := weights.Find(m.File())
		if err == nil {
			return p, weights.CheckNamed(p, m)
		}
		looked = append(looked, m.File())
	}
	hint := ""
	if d := os.Getenv(weights.EnvDir); d != "" { // a weights file given where a folder belongs
		if st, err := os.Stat(d); err == nil && !st.IsDir() {
			what := "a file"
			if !st.Mode().IsRegular() {
				what = "not a folder"
			}
			hint = fmt.Sprintf(" (%s is %s: $%s names the folder the weights are in, not a weights file)", d, what, weights.EnvDir)
		}
	}
	return "", fmt.Errorf("none of %s found in %s%s; run 'madclip weights download ViT-L/14-336'",
		strings.Join(looked, ", "), strings.Join(weights.Dirs(), ", "), hint)
}

// weightsConvertCommand is "madclip weights convert".
func weightsConvertCommand() *cli.Command {
	return &cli.Command{
		Name:      "convert",
		Usage:     "convert OpenAI, state-dict or Hugging Face CLIP weights to safetensors",
		ArgsUsage: "IN OUT.safetensors",
		Description: `IN is one of OpenAI's TorchScript archives (ViT-L-14-336px.pt), a torch.save
state dict, or a Hugging Face CLIP checkpoint (model.safetensors or
pytorch_model.bin). OUT keeps OpenAI's tensor names and the stored dtypes.
Nothing is written unless IN is a complete CLIP.

Examples:
  madclip weights convert ViT-L-14-336px.pt ViT-L-14-336px.safetensors
  madclip weights convert --vocab bpe_simple_vocab_16e6.txt.gz clip-hf/model.safetensors clip.safetensors`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "vocab", Usage: "copy this BPE vocab next to OUT, to keep it with the weights (no command reads it from there: give it with --vocab where it is needed; CLIP's own is built in)"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return fmt.Errorf("weights convert: want IN and OUT (see madclip weights convert --help)")
			}
			in, out := c.Args().Get(0), c.Args().Get(1)
			out, err := kernelPath(out)
			if err != nil {
				return fmt.Errorf("weights convert: OUT %w", err)
			}
			// The inputs first, then where the outputs go.
			if err := regularfile.Check(in); err != nil {
				return fmt.Errorf("weights convert: %w", err)
			}
			vocabOut := ""
			if v := c.String("vocab"); v != "" {
				if _, err := bpe.Load(v); err != nil {
					return fmt.Errorf("weights convert: --vocab: %w", err)
				}
				vocabOut = weights.VocabCopy(v, out) // "" when the same vocab is there
				// Another vocab there (a gzip file carries no mark of
				// madclip's; links and the like are checkOutputs').
				if st, err := os.Lstat(vocabOut); vocabOut != "" && err == nil && st.Mode().IsRegular() && st.Size() > 0 {
					return fmt.Errorf("weights convert: %s: it exists and is another file than --vocab; refusing to replace it (remove it or choose another folder)", vocabOut)
				}
			}
			inputs := []namedPath{{role: "IN", path: in}, {role: "--vocab", path: c.String("vocab")}}
			if err := checkOutputs([]namedPath{{role: "OUT", path: out, kind: authorship.Weights}, {role: "the vocab copy", path: vocabOut}}, inputs); err != nil {
				return fmt.Errorf("weights convert: %w", err)
			}
			if err := wellNamed("OUT", out, ".safetensors"); err != nil {
				return fmt.Errorf("weights convert: %w", err)
			}
			if err := writableFolder("OUT", out, authorship.Weights); err != nil {
				return fmt.Errorf("weights convert: %w", err)
			}
			return convertAction(c, in, out)
		},
	}
}

// convertAction converts in to out, on the compute thread.
func convertAction(c *cli.Context, in, out string) error {
	return onCompute(func() error {
		if err := weights.CheckInput(in); err != nil {
			return err
		}
		if _, err := checkpoint.ReadMeta(in); err == nil {
			return authorship.CheckpointAsWeights("load", in)
		}
		if !c.Bool("quiet") {
			fmt.Fprintf(os.Stderr, "converting %s (%s) to %s\n", oneLine(in), sizeOf(in), oneLine(out))
		}
		copied := "" // the vocab's copy beside OUT, unless the same is there
		if v := c.String("vocab"); v != "" {
			copied = weights.VocabCopy(v, out)
		}
		cfg, err := weights.Convert(in, out, c.String("vocab"))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "wrote %s (ViT, %d px, patch %d, width %d, %d+%d layers)\n",
			oneLine(out), cfg.ImageSize, cfg.PatchSize, cfg.VisionWidth, cfg.VisionLayers, cfg.TextLayers)
		if copied != "" {
			fmt.Fprintf(c.App.Writer, "copied the vocab %s to %s\n", oneLine(c.String("vocab")), oneLine(copied))
		}
		return nil
	})
}
