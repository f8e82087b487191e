package torch

import (
	"archive/zip"
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"madclip/internal/ziptest"
)

// makeArchives writes, with python3-torch, the same small state dict as a
// TorchScript archive, a torch.save pickle and a nested pickle.
func makeArchives(t *testing.T) string {
	t.Helper()
	py := python(t)
	dir := t.TempDir()
	cmd := exec.Command(py, filepath.Join("testdata", "make_archives.py"), dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("making archives: %v", err)
	}
	return dir
}

func TestLoadArchive(t *testing.T) {
	dir := makeArchives(t)
	run(t, func(s *Scope) error {
		for file, prefix := range map[string]string{"sd.pt": "", "nested.pt": "state_dict.", "ts.pt": ""} {
			got, err := LoadArchive(filepath.Join(dir, file))
			if err != nil {
				return err
			}
			w, ok := got[prefix+"a.weight"]
			if !ok {
				t.Fatalf("%s: names %v", file, keys(got))
			}
			near(t, file, f64(t, w), []float64{0, 1, 2, 3, 4, 5}, 0)
			sameShape(t, file, w.Shape(), []int64{3, 2})
			if b := got[prefix+"a.b.bias"]; b == nil || b.DType() != Float16 {
				t.Errorf("%s: a.b.bias %v", file, b)
			}
			if n := got[prefix+"n.0.w"]; n == nil || n.DType() != Float64 {
				t.Errorf("%s: n.0.w %v", file, n)
			}
			if file == "ts.pt" {
				if _, ok := got["input_resolution"]; !ok {
					t.Errorf("buffer missing from the TorchScript archive: %v", keys(got))
				}
			}
		}
		return nil
	})
	// Not an archive: an error naming the file, and the process survives.
	bad := filepath.Join(dir, "bad.pt")
	os.WriteFile(bad, []byte("PK\x03\x04 this is not really a zip"), 0o644)
	text := filepath.Join(dir, "text.pt")
	os.WriteFile(text, []byte("hello"), 0o644)
	raw, _ := os.ReadFile(filepath.Join(dir, "ts.pt"))
	trunc := filepath.Join(dir, "trunc.pt")
	os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	// Whole, but its directory's first entry no longer starts as one.
	flipped := filepath.Join(dir, "flipped.pt")
	dirAt := bytes.LastIndex(raw, []byte("PK\x05\x06")) + 16
	cd := int(raw[dirAt]) | int(raw[dirAt+1])<<8 | int(raw[dirAt+2])<<16 | int(raw[dirAt+3])<<24
	damaged := append([]byte(nil), raw...)
	damaged[cd+2] ^= 0xff
	os.WriteFile(flipped, damaged, 0o644)
	empty := filepath.Join(dir, "empty.pt")
	os.WriteFile(empty, nil, 0o644)
	run(t, func(s *Scope) error {
		for p, want := range map[string]string{
			empty: "an empty file (0 bytes)", bad: "whose end is missing", trunc: "whose end is missing", flipped: "a damaged zip archive (its directory does not read", text: "not a PyTorch file", filepath.Join(dir, "missing.pt"): "no such file",
		} {
			if _, err := LoadArchive(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want it named and %q", p, err, want)
			}
		}
		s.err = nil
		return nil
	})
}

func keys(m map[string]*Tensor) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// PickleDicts writes what Python's torch.load reads: nested dicts of
// tensors of several dtypes, a top-level tensor, a view; and LoadArchive
// reads it back.
func TestPickleDicts(t *testing.T) {
	py := python(t)
	path := filepath.Join(t.TempDir(), "out.pth")
	run(t, func(s *Scope) error {
		x := Arange(0, 12, 1, Float32, CPU).View(3, 4)
		b, err := PickleDicts([]Entry{
			{"first", "0.fc1.0.weight", x},
			{"first", "ids", FromSlice([]int64{7, -1})},
			{"second", "ctx.normal_end", x.Narrow(1, 1, 2)}, // a view: written as its own values
			{"", "text", FromSlice([]float64{0.5, 0.25}, 2, 1)},
		})
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		back, err := LoadArchive(path)
		if err != nil {
			return err
		}
		near(t, "read back", f64(t, back["second.ctx.normal_end"]), []float64{1, 2, 5, 6, 9, 10}, 0)
		if len(back) != 4 {
			t.Errorf("read back %v", keys(back))
		}
		return nil
	})
	script := `
import sys, torch
d = torch.load(sys.argv[1])
assert sorted(d) == ["first", "second", "text"], sorted(d)
assert d["first"]["0.fc1.0.weight"].dtype == torch.float32
assert torch.equal(d["first"]["0.fc1.0.weight"], torch.arange(12.0).view(3, 4))
assert d["first"]["ids"].tolist() == [7, -1] and d["first"]["ids"].dtype == torch.int64
assert d["second"]["ctx.normal_end"].tolist() == [[1, 2], [5, 6], [9, 10]]
assert d["text"].dtype == torch.float64 and d["text"].shape == (2, 1)
m = torch.nn.Linear(4, 3, bias=False)
m.load_state_dict({"weight": d["first"]["0.fc1.0.weight"]})
print("ok")
`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("torch.load: %v\n%s", err, out)
	}
}

// A legacy (pre-1.6) torch.save file is refused with a message that says
// what it is and how to convert it.
func TestLegacyTorchSaveRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "legacy.pt")
	os.WriteFile(p, []byte("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.rest"), 0o644)
	_, err := LoadArchive(p)
	if err == nil || !strings.Contains(err.Error(), "legacy format") || !strings.Contains(err.Error(), p) {
		t.Errorf("legacy file: %v", err)
	}
}

// rezip copies a zip archive, replacing the contents of the records whose
// names end in a key of replace (stored, with correct checksums); a record
// replaced by nil is left out.
func rezip(t *testing.T, src, dst string, replace map[string][]byte) {
	t.Helper()
	ziptest.Rewrite(t, src, dst, func(name string, data []byte) []byte {
		for suffix, b := range replace {
			if strings.HasSuffix(name, suffix) {
				data = b
			}
		}
		return data
	})
}

// Damaged archives end in a one-line error that names the file, never in a
// crash or in values read from beyond a record: libtorch's unpickler faults
// on a REDUCE with an empty stack (Debian's libtorch 1.13; 2.6 reports it as
// a parsing error) and reads a storage record cut short past its end, so
// madclip first checks the zip, runs data.pkl through its own pickle
// machine (calling nothing) and checks every storage record's size, and
// reads TorchScript archives with libtorch in a child process (TestChildFailure);
// broken zips and files that are not zips never reach libtorch (random
// bytes fed to its pickle reader crashed it too).
func TestLoadArchiveDamaged(t *testing.T) {
	dir := makeArchives(t)
	ts := filepath.Join(dir, "ts.pt")
	reduce := filepath.Join(dir, "reduce.pt")
	rezip(t, ts, reduce, map[string][]byte{"/data.pkl": []byte("\x80\x02R.")})
	marks := filepath.Join(dir, "marks.pt")
	rezip(t, ts, marks, map[string][]byte{"/data.pkl": []byte("\x80\x02t.")})
	nopkl := filepath.Join(dir, "nopkl.pt")
	rezip(t, ts, nopkl, map[string][]byte{"/data.pkl": nil})
	// A byte of a stored record changed: the zip's structure is intact but
	// the record's CRC-32 no longer matches.
	stored := filepath.Join(dir, "stored.pt")
	rezip(t, ts, stored, nil)
	raw, _ := os.ReadFile(stored)
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	off, err := zr.File[0].DataOffset()
	if err != nil || zr.File[0].UncompressedSize64 == 0 {
		t.Fatalf("%s: %v", zr.File[0].Name, err)
	}
	raw[off]++ // the first byte of the first record
	crc := filepath.Join(dir, "crc.pt")
	os.WriteFile(crc, raw, 0o644)
	// A storage record cut short, its checksum made anew: libtorch loads
	// it with a storage smaller than its tensor.
	short := filepath.Join(dir, "short.pt")
	rezip(t, ts, short, map[string][]byte{"/data/0": {1, 2}})
	noise := make([]byte, 4096)
	rand.NewChaCha8([32]byte{10}).Read(noise)
	random := filepath.Join(dir, "random.pt")
	os.WriteFile(random, noise, 0o644)
	for p, want := range map[string]string{
		reduce: "a damaged archive: data.pkl: at byte 2 (opcode 0x52): stack underflow",
		marks:  "a damaged archive: data.pkl: at byte 2 (opcode 0x74): no MARK",
		nopkl:  "no data.pkl",
		crc:    "a damaged zip archive",
		short:  "a damaged archive: storage record data/0 holds 2 bytes, its ",
		random: "not a PyTorch file",
	} {
		_, err := LoadArchive(p)
		if err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line naming the file", filepath.Base(p), err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", filepath.Base(p), err, want)
		}
	}
	// The intact archive still loads after them.
	got, err := LoadArchive(ts)
	if err != nil || got["a.weight"] == nil {
		t.Errorf("ts.pt after the damaged ones: %v", err)
	}
	Do(func() error {
		for _, x := range got {
			x.Free()
		}
		return nil
	})
}

// childFailure keeps the child's own error (its last line, after any
// warning libtorch printed) and names a crash as one.
func TestChildFailure(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`echo "[W warning] something" >&2; echo "load x.pt: no tensors in the file" >&2; exit 1`, "load x.pt: no tensors in the file"},
		{`echo "SIGSEGV: segmentation violation" >&2; exit 2`, "load x.pt: libtorch's archive reader crashed on this file (a memory fault)"},
		{`kill -ABRT $$`, "load x.pt: libtorch's archive reader crashed on this file (signal aborted)"},
		{`echo "odd" >&2; exit 1`, "load x.pt: libtorch's archive reader crashed on this file (exit status 1)"},
	} {
		cmd := exec.Command("sh", "-c", c.script)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := childFailure("x.pt", cmd.Run(), stderr.String())
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %q", c.script, err, c.want)
		}
	}
}
