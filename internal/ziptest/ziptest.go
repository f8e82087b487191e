// Package ziptest rewrites zip archives (the format of torch.save and
// TorchScript) for tests of damaged inputs.
package ziptest

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"testing"
)

// Rewrite writes the records of the zip archive src to dst, stored, with
// correct checksums, each record's bytes passed through edit (which returns
// the bytes to write, or nil to leave the record out).
func Rewrite(t testing.TB, src, dst string, edit func(name string, data []byte) []byte) {
	t.Helper()
	z, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if data = edit(f.Name, data); data == nil {
			continue
		}
		out, err := w.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		if err == nil {
			_, err = out.Write(data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
