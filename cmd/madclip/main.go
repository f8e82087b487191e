// Command madclip is few-shot medical anomaly detection with CLIP (MadCLIP,
// MICCAI 2025) in Go over libtorch.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"madclip/torch"
)

// version is the tool's version, stamped into checkpoints by later commands.
const version = "0.1.0-dev"

func main() {
	app := newApp()
	if err := app.Run(flagsFirst(app, os.Args)); err != nil {
		fmt.Fprintf(os.Stderr, "madclip: %v\n", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "madclip",
		Usage:   "few-shot medical anomaly detection with CLIP",
		Version: version,
		Description: `madclip learns, from k normal and k abnormal labelled scans, to score new
scans and draw pixel-level anomaly heatmaps (MadCLIP, MICCAI 2025), on a
frozen OpenAI CLIP ViT-L/14 through libtorch.

Examples:
  madclip doctor                          check libtorch, the BLAS in use and CUDA
  madclip weights download ViT-L/14-336   fetch, verify and convert OpenAI's CLIP
  madclip clip --image scan.png --text "a brain MRI" --text "a chest X-ray"
  madclip tokenize "damaged Brain"        CLIP token ids`,
		Commands: []*cli.Command{
			synthCommand(),
			trainCommand(),
			predictCommand(),
			evalCommand(),
			benchCommand(),
			importCommand(),
			exportCommand(),
			clipCommand(),
			tokenizeCommand(),
			weightsCommand(),
			doctorCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("unknown command %q (see madclip --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		// Errors are printed once, by main, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// onCompute runs a command's body on the libtorch compute thread.
func onCompute(fn func() error) error { return torch.Do(fn) }
