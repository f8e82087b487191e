package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"madclip/weights"
)

// flagsFirst puts flags before arguments, never reads "--" as a flag's
// value, and leaves a flag that lacks its value last for the parser to
// name.
func TestFlagsFirst(t *testing.T) {
	app := newApp()
	for _, c := range []struct{ in, want []string }{
		{[]string{"madclip", "predict", "a.png", "--checkpoint", "c", "--json"},
			[]string{"madclip", "predict", "--checkpoint", "c", "--json", "--", "a.png"}},
		{[]string{"madclip", "predict", "a.png", "--checkpoint=c", "b.png"},
			[]string{"madclip", "predict", "--checkpoint=c", "--", "a.png", "b.png"}},
		{[]string{"madclip", "predict", "--checkpoint", "c", "--", "-odd.png"},
			[]string{"madclip", "predict", "--checkpoint", "c", "--", "-odd.png"}},
		{[]string{"madclip", "predict", "a.png", "--checkpoint", "c", "--heatmap"},
			[]string{"madclip", "predict", "--checkpoint", "c", "--heatmap"}},
		{[]string{"madclip", "weights", "convert", "in.pt", "out.safetensors", "--vocab", "v"},
			[]string{"madclip", "weights", "convert", "--vocab", "v", "--", "in.pt", "out.safetensors"}},
		{[]string{"madclip", "doctor"}, []string{"madclip", "doctor"}},
		{[]string{"madclip", "nonsense", "x"}, []string{"madclip", "nonsense", "x"}},
	} {
		if got, err := flagsFirst(app, c.in); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("flagsFirst(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// A one-value flag given twice, by any of its names, is an error; a list
	// flag may repeat, and so may a switch.
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"madclip", "train", "--epochs", "5", "--out", "a", "--epochs", "60"}, "train: --epochs is given twice"},
		{[]string{"madclip", "predict", "a.png", "--checkpoint=c", "-c", "d"}, "predict: --checkpoint is given twice"},
		{[]string{"madclip", "predict", "a.png", "--heatmap", "h", "b.png", "--heatmap=g"}, "predict: --heatmap is given twice"},
		{[]string{"madclip", "clip", "--image", "a.png", "--image", "b.png", "--text", "x", "--text", "y"}, ""},
		{[]string{"madclip", "train", "--layers", "1", "--layers", "2"}, ""},
		{[]string{"madclip", "train", "-q", "--quiet"}, "train: --quiet is given twice"},
		{[]string{"madclip", "import", "authors", "x.pth", "--dataset", "A", "--dataset", "B"}, "import authors: --dataset is given twice; give it once (see madclip import authors --help)"},
	} {
		_, err := flagsFirst(app, c.in)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("flagsFirst(%q): error %v, want %q", c.in, err, c.want)
		}
	}
}

// oneLine keeps a message on one readable line whatever a file name holds.
func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain/café.png":       "plain/café.png",
		"two\nlines.png":       `two\nlines.png`,
		"esc\x1b[31m.png":      `esc\x1b[31m.png`,
		"caf\xe9/x.png":        `caf\xe9/x.png`,
		"\xff\xfe":             `\xff\xfe`,
		"tab\there \u0085 end": `tab\there \u0085 end`,
		"line\u2028para\u2029": `line\u2028para\u2029`,
		// Marks that reorder or hide text (a name that reads as another).
		"\u202eevil.png":           `\u202eevil.png`,
		"a\u200bb\ufeffc\u2066d":   `a\u200bb\ufeffc\u2066d`,
		"\u061cx\u2060":            `\u061cx\u2060`,
		"ok\u00e9\u4e2d\U0001f600": "ok\u00e9\u4e2d\U0001f600",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// A resumed run's epoch line counts only the steps this process took.
func TestTrainReporterRateAfterResume(t *testing.T) {
	var buf bytes.Buffer
	r := newTrainReporter(&buf, false)
	r.Start(3, 10, 18)
	r.Step(1, 8, 0.5) // resumed at epoch 2, step 9
	r.Step(1, 9, 0.5)
	// 2 steps in 1 s, 10 steps left: about 5 s.
	if got, want := r.epochLine(1, 0.5, time.Second), "epoch 2/3  loss 0.5000  1s elapsed, about 5s left  2.0 steps/s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Slower than a step a second, as ViT-L on a CPU: seconds per step.
	buf.Reset()
	r = newTrainReporter(&buf, false)
	r.Start(1, 2, 0)
	r.Step(0, 0, 0.5)
	r.Step(0, 1, 0.5)
	if got, want := r.epochLine(0, 0.5, 25*time.Second), "epoch 1/1  loss 0.5000  25s elapsed  12.5 s/step"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// In a log, a long epoch gets a line every stepLogEvery, not one per step,
// and none for its last step (the epoch's line follows).
func TestTrainReporterLogsLongEpochs(t *testing.T) {
	var buf bytes.Buffer
	r := newTrainReporter(&buf, false)
	r.Start(2, 4, 0)
	r.Step(0, 0, 0.7)
	if buf.Len() != 0 {
		t.Fatalf("a line after a quick step: %q", buf.String())
	}
	r.started = r.started.Add(-3 * stepLogEvery)
	r.last = r.last.Add(-3 * stepLogEvery)
	r.Step(0, 1, 0.6)
	if got := buf.String(); !strings.HasPrefix(got, "epoch 1/2 step 2/4  loss 0.6000  1m30s elapsed, about 4m30s left\n") {
		t.Errorf("step line %q", got)
	}
	buf.Reset()
	r.Step(0, 2, 0.5) // just written: none
	r.last = r.last.Add(-stepLogEvery)
	r.Step(0, 3, 0.5) // the epoch's last step: the epoch line says it
	if buf.Len() != 0 {
		t.Errorf("lines %q", buf.String())
	}
	q := newTrainReporter(&buf, true)
	q.Start(1, 4, 0)
	q.last = q.last.Add(-stepLogEvery)
	if q.Step(0, 0, 1); buf.Len() != 0 {
		t.Errorf("quiet wrote %q", buf.String())
	}
}

// terminalReporter is the train reporter as it shows on a terminal, its
// output going to w.
func terminalReporter(w io.Writer) *trainReporter {
	r := newTrainReporter(w, false)
	r.tty = true
	return r
}

// On a terminal the bar's rate counts from the start of training, not
// from the end of the first step (which read thousands of steps a second).
func TestTrainBarRate(t *testing.T) {
	var buf bytes.Buffer
	r := terminalReporter(&buf)
	r.Start(3, 10, 18) // resumed at epoch 2, step 9: 12 steps left
	time.Sleep(200 * time.Millisecond)
	r.Step(1, 8, 0.5)
	rates := regexp.MustCompile(`\(([0-9.]+) step/s\)`).FindAllStringSubmatch(buf.String(), -1)
	if len(rates) == 0 {
		t.Fatalf("no rate shown: %q", buf.String())
	}
	if v, _ := strconv.ParseFloat(rates[len(rates)-1][1], 64); v <= 0 || v > 6 {
		t.Errorf("one step in 0.2 s shown as %v steps/s: %q", v, buf.String())
	}
	if !strings.Contains(buf.String(), "8%") { // 1 of the 12 steps left
		t.Errorf("bar %q, want 1 of 12 steps", buf.String())
	}
	// The last step ends the bar's line, with its words: what follows
	// starts a line of its own.
	buf.Reset()
	r = terminalReporter(&buf)
	r.Start(1, 2, 0)
	r.Step(0, 0, 0.5)
	r.Step(0, 1, 0.25)
	r.EpochDone(0, 0.375)
	r.Stage("threshold")
	if out := buf.String(); !regexp.MustCompile(`\nepoch 1/1  loss 0\.3750  [0-9.]+m?s elapsed  [0-9.]+ steps/s\nthreshold\n$`).MatchString(out) || !strings.Contains(out[strings.LastIndex(out, "\r"):], "epoch 1/1 step 2/2 loss 0.2500 100%") {
		t.Errorf("the bar's end: %q", out)
	}
	// A line during training goes where the bar was, not after it; a run
	// stopped early leaves the bar as it was, not drawn full, and ends its
	// line.
	buf.Reset()
	r = terminalReporter(&buf)
	r.Start(2, 2, 0)
	r.Step(0, 0, 0.5)
	r.Step(0, 1, 0.5)
	r.Stage("epoch 1: valid image AUROC 0.9")
	if out := buf.String(); !strings.Contains(out, "\r                    ") || strings.Contains(out, "]epoch 1: valid") {
		t.Errorf("a line during training: %q", out)
	}
	buf.Reset()
	r.Step(1, 0, 0.5)
	r.finish()
	if out := buf.String(); strings.Contains(out, "100%") || !strings.HasSuffix(out, "\n") {
		t.Errorf("a run stopped at 3 of 4 steps: %q", out)
	}
}

// --quiet hides progress, never a warning.
func TestQuietKeepsWarnings(t *testing.T) {
	var buf bytes.Buffer
	r := newTrainReporter(&buf, true)
	r.Stage("caching backbone features")
	r.Start(1, 2, 0)
	r.Step(0, 0, 0.5)
	r.EpochDone(0, 0.5)
	r.Warn("2 of the 2 abnormal shots have a mask that marks nothing")
	if got := buf.String(); got != "warning: 2 of the 2 abnormal shots have a mask that marks nothing\n" {
		t.Errorf("quiet training reported %q, want the warning alone", got)
	}
}

// Durations in final lines read as a person writes them.
func TestRoughly(t *testing.T) {
	for d, want := range map[time.Duration]string{
		984 * time.Millisecond:                       "984 ms",
		1264 * time.Millisecond:                      "1.3 s",
		59940 * time.Millisecond:                     "59.9 s",
		62261 * time.Millisecond:                     "1 min 2 s",
		18*time.Minute + 18*time.Second:              "18 min 18 s",
		2*time.Hour + 5*time.Minute + 40*time.Second: "2 h 6 min",
	} {
		if got := roughly(d); got != want {
			t.Errorf("roughly(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestSecondSignalStopsAtOnce: the first signal cancels the work's context
// and is reported; only a second one exits, with 128 + its number.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	codes := make(chan int, 1)
	const grace = 300 * time.Millisecond
	ctx, caught, stop := notifySignals(context.Background(), func(code int) { codes <- code }, grace, syscall.SIGUSR1)
	defer stop()
	// Twice at once, as timeout and a process-group kill deliver it: one
	// request.
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first signal did not cancel the context")
	}
	if caught() != syscall.SIGUSR1 {
		t.Errorf("caught %v", caught())
	}
	select {
	case c := <-codes:
		t.Fatalf("exit(%d) after one signal delivered twice", c)
	case <-time.After(2 * grace):
	}
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case c := <-codes:
		if c != 128+int(syscall.SIGUSR1) {
			t.Errorf("exit code %d, want %d", c, 128+int(syscall.SIGUSR1))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second signal did not stop the process")
	}
}

// A signal madclip was started ignoring (nohup's SIGHUP) stays ignored.
func TestIgnoredSignalStaysIgnored(t *testing.T) {
	signal.Ignore(syscall.SIGUSR2)
	defer signal.Reset(syscall.SIGUSR2)
	ctx, caught, stop := notifySignals(context.Background(), func(int) { t.Error("exit called") }, time.Second, syscall.SIGUSR2)
	defer stop()
	syscall.Kill(os.Getpid(), syscall.SIGUSR2)
	select {
	case <-ctx.Done():
		t.Errorf("an ignored signal cancelled the work (caught %v)", caught())
	case <-time.After(300 * time.Millisecond):
	}
	if !signal.Ignored(syscall.SIGUSR2) {
		t.Error("notifySignals turned an ignored signal back on")
	}
}

// settleOriginal keeps a download only where it serves: with --keep or an
// original kept before, and after a conversion that failed to write.
func TestSettleOriginal(t *testing.T) {
	content := fmt.Errorf("convert x: not the CLIP expected: %w", weights.ErrContent)
	written := errors.New("write out.safetensors: no space left on device")
	for _, c := range []struct {
		name     string
		keep     bool
		err      error
		stays    bool
		wantText string
	}{
		{"converted", false, nil, false, ""},
		{"converted, kept", true, nil, true, ""},
		{"unusable", false, content, false, "(the download is removed)"},
		{"unusable, kept", true, content, true, "(the download stays as "},
		{"not written", false, written, true, "no space left"},
	} {
		raw := filepath.Join(t.TempDir(), "ViT-B-32.download.pt")
		os.WriteFile(raw, []byte("verified"), 0o644)
		err := settleOriginal(raw, c.keep, c.err)
		if (err == nil) != (c.wantText == "") || (err != nil && !strings.Contains(err.Error(), c.wantText)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.wantText)
		}
		if _, statErr := os.Stat(raw); (statErr == nil) != c.stays {
			t.Errorf("%s: the original stays: %v, want %v", c.name, statErr == nil, c.stays)
		}
	}
}

// A mistyped word is matched to the name it most likely meant, and only
// then.
func TestDidYouMean(t *testing.T) {
	names := []string{"synth", "train", "predict", "eval", "export", "import"}
	for word, want := range map[string]string{
		"trian": " (did you mean train?)", "Train": " (did you mean train?)", "pred": " (did you mean predict?)",
		"evl": " (did you mean eval?)", "x": "", "train": "", "benchmark": "", "exp": " (did you mean export?)",
	} {
		if got := didYouMean(word, names); got != want {
			t.Errorf("didYouMean(%q) = %q, want %q", word, got, want)
		}
	}
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"trian", "train", 2}, {"kitten", "sitting", 3}, {"é", "e", 1}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

// In a log, a count is a line now and then with the time left at its pace.
func TestCountBarLine(t *testing.T) {
	b := &countBar{what: "eval", total: 1000}
	if got, want := b.line(120, 62*time.Second), "eval: 120/1000 images, 1m2s elapsed, about 7m35s left"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var buf bytes.Buffer
	b = &countBar{w: &buf, what: "predict", total: 10, start: time.Now().Add(-time.Minute), last: time.Now().Add(-time.Minute)}
	b.Set(5)
	b.Set(6) // within logEvery of the last line
	if lines := strings.Count(buf.String(), "\n"); lines != 1 || !strings.HasPrefix(buf.String(), "predict: 5/10 images, 1m0s elapsed, about 1m0s left") {
		t.Errorf("log lines %q", buf.String())
	}
	var none *countBar
	none.Set(1) // shows nothing, and does not fail
	none.Clear()
}

// JSON output shows nothing invisible: bidi and zero-width marks and C1
// controls come out as \u escapes (and read back as themselves); the
// layout and printable text are left alone.
func TestMarshalJSONEscapesInvisible(t *testing.T) {
	in := map[string]string{"path": "scan\u202egnp.exe", "word": "a\u200bb\u009bc é ü <x>"}
	b, err := marshalJSON(in, "  ")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`scan\u202egnp.exe`, `a\u200bb\u009bc é ü \u003cx\u003e`, "{\n  \"path\""} {
		if !strings.Contains(s, want) {
			t.Errorf("lacks %q:\n%s", want, s)
		}
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r >= 0x7f && isControl(r) }) {
		t.Errorf("a raw invisible character:\n%q", s)
	}
	var back map[string]string
	if err := json.Unmarshal(b, &back); err != nil || back["path"] != in["path"] || back["word"] != in["word"] {
		t.Errorf("read back as %q (%v), want %q", back, err, in)
	}
	if b, _ := marshalJSON(in, ""); strings.Contains(string(b), "\n") || !strings.Contains(string(b), `\u202e`) {
		t.Errorf("compact: %s", b)
	}
}
