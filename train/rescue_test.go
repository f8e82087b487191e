package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"madclip/checkpoint"
)

// removeOnSave removes a folder when the run says it is saving (its
// output folder and that folder's parent gone at the end of a long run).
type removeOnSave struct {
	quietReporter
	dir string
}

func (r *removeOnSave) Stage(s string) {
	if strings.HasPrefix(s, "saving ") {
		os.RemoveAll(r.dir)
	}
}

// removeAndCancel removes a folder and cancels the run after n steps.
type removeAndCancel struct {
	cancelAfter
	dir string
}

func (r *removeAndCancel) Step(epoch, step int, loss float64) {
	if r.n == 1 {
		os.RemoveAll(r.dir)
	}
	r.cancelAfter.Step(epoch, step, loss)
}

// outGone gives a config whose output folder's parent can be removed, and
// makes the working folder a fresh one for the rescued copy.
func outGone(t *testing.T) (Config, string, string) {
	root := synth(t)
	c := smallConfig(t, root)
	c.Epochs = 1
	parent := filepath.Join(t.TempDir(), "disk")
	if err := os.MkdirAll(filepath.Join(parent, "runs"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.Out = filepath.Join(parent, "runs", "ck.safetensors")
	wd := t.TempDir()
	t.Chdir(wd)
	return c, parent, wd
}

// rescued returns the one rescued checkpoint in dir, loaded.
func rescued(t *testing.T, dir string, check func(*checkpoint.Checkpoint)) string {
	t.Helper()
	found, _ := filepath.Glob(filepath.Join(dir, "ck.rescued-*.safetensors"))
	if len(found) != 1 {
		t.Fatalf("rescued copies in %s: %v", dir, found)
	}
	loaded(t, found[0], check)
	return found[0]
}

// A finished run whose output folder has gone saves its model in the
// working folder, says where, and still fails.
func TestSaveRescuedAtEnd(t *testing.T) {
	c, parent, wd := outGone(t)
	_, err := run(t, context.Background(), c, &removeOnSave{dir: parent})
	if err == nil {
		t.Fatal("the run succeeded with its output folder gone")
	}
	p := rescued(t, wd, func(ck *checkpoint.Checkpoint) {
		if ck.Meta.Partial() || ck.Meta.Epochs != 1 {
			t.Errorf("rescued checkpoint: partial %v, %d epochs", ck.Meta.Partial(), ck.Meta.Epochs)
		}
	})
	if !strings.Contains(err.Error(), c.Out) || !strings.Contains(err.Error(), "saved as "+p+" instead") {
		t.Errorf("error %q does not name %s and the rescued %s", err, c.Out, p)
	}
}

// An interrupted run whose output folder has gone saves its partial
// checkpoint in the working folder and says how to resume from it.
func TestSaveRescuedOnInterrupt(t *testing.T) {
	c, parent, wd := outGone(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := run(t, ctx, c, &removeAndCancel{cancelAfter{n: 2, cancel: cancel}, parent})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	p := rescued(t, wd, func(ck *checkpoint.Checkpoint) {
		if !ck.Meta.Partial() || ck.Meta.Step != 2 {
			t.Errorf("rescued checkpoint: partial %v at step %d", ck.Meta.Partial(), ck.Meta.Step)
		}
	})
	if !strings.Contains(err.Error(), "saved "+p+" instead (continue with madclip train --resume "+p+")") {
		t.Errorf("error %q does not say to resume from %s", err, p)
	}
}

// A rescue name is new: it never names a file already there.
func TestRescueName(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 7, 18, 30, 5, 0, time.UTC)
	first := rescueName(dir, "/x/run.safetensors", now)
	if want := filepath.Join(dir, "run.rescued-20261207-183005.safetensors"); first != want {
		t.Fatalf("rescue name %q, want %q", first, want)
	}
	os.WriteFile(first, nil, 0o644)
	if second := rescueName(dir, "/x/run.safetensors", now); second != filepath.Join(dir, "run.rescued-20261207-183005-2.safetensors") {
		t.Errorf("second rescue name %q", second)
	}
	if got := rescueFolders(filepath.Join(dir, "ck.safetensors")); len(got) == 0 {
		t.Error("no rescue folder")
	}
	t.Chdir(dir)
	for _, f := range rescueFolders(filepath.Join(dir, "ck.safetensors")) {
		if f == dir {
			t.Errorf("the output's own folder %s is among the rescue folders", dir)
		}
	}
}
