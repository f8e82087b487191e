// Command madclip is few-shot medical anomaly detection with CLIP (MadCLIP,
// MICCAI 2025) in Go over libtorch.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"madclip/checkpoint"
	"madclip/torch"
)

// version is the tool's version: the checkpoint format it writes, as a
// development build.
const version = checkpoint.ToolVersion

func main() {
	torch.ServeArchiveChild() // weights convert and import authors read TorchScript archives in a child
	if w := addressLimitWarning(); w != "" {
		fmt.Fprintln(os.Stderr, w)
	}
	// A reader that stops reading (madclip predict … | head) makes writes
	// to standard output fail with EPIPE instead of killing the process
	// with SIGPIPE in the middle of its work: pictures being written are
	// finished and renamed into place, a training run saves, and the
	// process then exits as a shell reports a death by SIGPIPE, quietly.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	app := newApp()
	out := &checkedWriter{w: os.Stdout}
	app.Writer = out
	args, err := flagsFirst(app, os.Args)
	if err == nil {
		err = app.Run(args)
	}
	if err == nil && out.err != nil {
		err = fmt.Errorf("write standard output: %w", out.err)
	}
	if errors.Is(err, syscall.EPIPE) && errors.Is(out.err, syscall.EPIPE) {
		os.Exit(exitBrokenPipe)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "madclip: %s\n", oneLine(strings.TrimPrefix(err.Error(), "madclip: ")))
		var se signalError
		if errors.As(err, &se) {
			os.Exit(se.exitCode())
		}
		os.Exit(1)
	}
}

// exitBrokenPipe is the exit status of a command whose standard output
// was closed by its reader: 128 + SIGPIPE's number, what a shell reports
// for a process SIGPIPE ended.
const exitBrokenPipe = 128 + int(syscall.SIGPIPE)

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

Outputs are written whole (a temporary file, then a rename) and replace only
a file madclip wrote, or an empty one: anything else at an output's path is
refused before any work, and inputs are never written.

Examples, the main work on a tiny random CLIP and synthetic scans (no files needed):
  madclip synth --out data                 a synthetic few-shot dataset (Brain, Chest)
  madclip train --data data --dataset Brain --preset tiny --shots 8 --epochs 5 --image-size 112 --out brain.safetensors
  madclip predict data/Brain_AD/test/Ungood/img --checkpoint brain.safetensors --panel panels/
  madclip eval --checkpoint brain.safetensors --data data --report report/
  madclip inspect brain.safetensors        what a checkpoint records

with OpenAI's CLIP, as the paper (see madclip train --help):
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
			inspectCommand(),
			clipCommand(),
			tokenizeCommand(),
			weightsCommand(),
			doctorCommand(),
			versionCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand("madclip", c.Args().First(), c.App.Commands)
			}
			return cli.ShowAppHelp(c)
		},
		// Errors are printed once, by main, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	uniformFlags(app.Commands, "")
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		if f, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
			if cmd := commandFlag(app, os.Args[1:], f); cmd != "" {
				return fmt.Errorf("%s goes after the command: madclip %s %s … (see madclip --help)", dashed(f), cmd, dashed(f))
			}
		}
		return fmt.Errorf("%s (see madclip --help)", usageText(err))
	}
	return app
}

// versionCommand prints the version, as go version and docker version do
// (and --version).
func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print madclip's version",
		Description: `Prints "madclip version X", as madclip --version does.

Examples:
  madclip version`,
		Action: func(c *cli.Context) error {
			cli.ShowVersion(c)
			return nil
		},
	}
}

// onCompute runs a command's body on the libtorch compute thread.
func onCompute(fn func() error) error { return torch.Do(fn) }

// signalGrace is how long after a first signal a second one still counts
// as the same request (see notifySignals).
const signalGrace = time.Second

// signalError is an error caused by a signal the command caught (and
// handled: training saves a partial checkpoint first). The process then
// exits as a shell reports a command the signal ended: 128 + its number
// (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), so that scripts and
// schedulers see why it stopped.
type signalError struct {
	sig os.Signal
	err error
}

func (e signalError) Error() string { return e.err.Error() }
func (e signalError) Unwrap() error { return e.err }

// signalName names a signal as users know it ("SIGTERM", not
// "terminated").
func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT (Ctrl-C)"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

func (e signalError) exitCode() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

// notifySignals is signal.NotifyContext that also says which signal, if
// any, cancelled the context. The first signal asks the work to stop where
// it can stop cleanly (training saves a partial checkpoint); a second one,
// at least grace after it, stops the process at once through exit, with
// 128 + its number and nothing saved, for work stuck where it cannot stop
// (OpenBLAS waits forever for memory that a `ulimit -v` denies). A repeat
// within grace is the same request: `timeout` and a kill of the process
// group deliver one signal twice, microseconds apart.
//
// A signal the process was started ignoring (nohup's SIGHUP; SIGINT for a
// background job of a script) stays ignored: whoever started madclip
// asked it to outlive that signal.
func notifySignals(parent context.Context, exit func(code int), grace time.Duration, sigs ...os.Signal) (ctx context.Context, caught func() os.Signal, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 4)
	var heeded []os.Signal
	for _, s := range sigs {
		if !signal.Ignored(s) {
			heeded = append(heeded, s)
		}
	}
	if len(heeded) > 0 {
		signal.Notify(ch, heeded...)
	}
	done := make(chan struct{})
	var got atomic.Value
	go func() {
		var first time.Time
		select {
		case s := <-ch:
			got.Store(s)
			first = time.Now()
			fmt.Fprintf(os.Stderr, "madclip: %s: stopping after the work in hand (a second signal, a second or more later, stops at once without saving)\n", signalName(s))
			cancel()
		case <-done:
			return
		}
		for {
			select {
			case s := <-ch:
				if time.Since(first) < grace {
					continue
				}
				fmt.Fprintf(os.Stderr, "madclip: %s again: stopping now, without saving\n", signalName(s))
				exit(signalError{sig: s}.exitCode())
				return
			case <-done:
				return
			}
		}
	}()
	caught = func() os.Signal {
		s, _ := got.Load().(os.Signal)
		return s
	}
	var once sync.Once
	return ctx, caught, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel()
		})
	}
}
