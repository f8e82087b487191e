// Command madclip is few-shot medical anomaly detection with CLIP (MadCLIP,
// MICCAI 2025) in Go over libtorch.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"madclip/checkpoint"
	"madclip/torch"
	"madclip/train"
)

// version is the tool's version: the checkpoint format it writes, as a
// development build.
const version = checkpoint.Version + "-dev"

func main() {
	app := newApp()
	out := &checkedWriter{w: os.Stdout}
	app.Writer = out
	err := app.Run(flagsFirst(app, os.Args))
	if err == nil && out.err != nil {
		err = fmt.Errorf("write standard output: %w", out.err)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "madclip: %s\n", oneLine(strings.TrimPrefix(err.Error(), "madclip: ")))
		if errors.Is(err, train.ErrInterrupted) {
			os.Exit(130) // as a shell reports a command ended by Ctrl-C
		}
		os.Exit(1)
	}
}

// checkedWriter keeps the first write error, so that output lost to a full
// disk or a closed pipe ends the command with a non-zero exit; later
// writes are dropped.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.err = err
	return n, err
}

func newApp() *cli.App {
	app := &cli.App{
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
	uniformFlags(app.Commands, "")
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return fmt.Errorf("%v (see madclip --help)", err)
	}
	return app
}

// onCompute runs a command's body on the libtorch compute thread.
func onCompute(fn func() error) error { return torch.Do(fn) }
