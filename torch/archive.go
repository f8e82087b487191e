package torch

/*
#include <stdlib.h>
#include "tb.h"
*/
import "C"

import (
	"archive/zip"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"unsafe"

	"madclip/internal/regularfile"
	"madclip/torch/safetensors"
	"madclip/torch/torchsave"
)

// LoadArchive reads the tensors of a PyTorch file: a TorchScript archive
// (OpenAI's CLIP releases; its parameters and buffers by their dotted names)
// or a torch.save pickle of a state dict (nested dicts flatten to dotted
// names). Tensors land on the CPU in their stored dtype. No Python code in
// the file is run: torch.save's zip files are read by package torchsave,
// which only rebuilds data; TorchScript archives by libtorch's unpickler,
// which does the same, in a child process (libtorch crashes on some damaged
// archives; the child's crash becomes an error here), so a program that
// calls LoadArchive calls ServeArchiveChild first in main. A zip whose
// structure or checksums are wrong never reaches libtorch. torch.save's
// legacy format (before PyTorch 1.6) is refused with a message that says how
// to convert it.
func LoadArchive(path string) (map[string]*Tensor, error) {
	if err := CheckArchive(path); err != nil {
		return nil, err
	}
	if torchsave.IsTorchSave(path) {
		return loadTorchSave(path)
	}
	if err := checkRecords(path); err != nil {
		return nil, err
	}
	return loadInChild(path)
}

// CheckArchive is LoadArchive's quick first look, for a message before
// long work: it refuses, saying what the file is, anything that is not a
// regular file holding a zip archive (the format of torch.save and
// TorchScript) with a data.pkl. It reads the file's head and the zip directory, not the
// data: a damaged record is found by LoadArchive.
func CheckArchive(path string) error {
	if err := regularfile.Check(path); err != nil {
		return fmt.Errorf("load %w", err)
	}
	if head, err := readHead(path, 8); err == nil && string(head) == "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46" {
		return fmt.Errorf("load %s: a torch.save file in the legacy format of PyTorch before 1.6, which madclip does not read; save it again with a current PyTorch (torch.save(torch.load(f), g)) or convert it with scripts/convert_clip.py", path)
	}
	z, err := zip.OpenReader(path)
	if err != nil {
		return notZip(path, err)
	}
	defer z.Close()
	for _, f := range z.File {
		if strings.HasSuffix(f.Name, "/data.pkl") {
			return nil
		}
	}
	return fmt.Errorf("load %s: a zip archive, but not one torch.save or TorchScript writes (no data.pkl)", path)
}

// loadHere reads a TorchScript archive with libtorch in this process. It
// runs only in LoadArchive's child (see ServeArchiveChild): libtorch's
// unpickler can crash on a damaged archive.
func loadHere(path string) (map[string]*Tensor, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var n *C.tb_named
	if err := check("load_archive", C.tb_load_archive(cp, &n)); err != nil {
		if strings.Contains(err.Error(), "Unknown opcode") {
			return nil, fmt.Errorf("load %s: %w (libtorch's unpickler reads TorchScript archives and torch.save state dicts, not every pickle; scripts/convert_clip.py reads the rest)", path, err)
		}
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer C.tb_named_free(n)
	out := map[string]*Tensor{}
	for i := range int(C.tb_named_len(n)) {
		name := C.GoString(C.tb_named_name(n, C.int(i)))
		var h *C.tb_tensor
		if err := check("load_archive", C.tb_named_tensor(n, C.int(i), &h)); err != nil {
			for _, t := range out {
				t.Free()
			}
			return nil, fmt.Errorf("load %s: tensor %s: %w", path, name, err)
		}
		t := newTensor(h)
		if old, dup := out[name]; dup {
			old.Free()
		}
		out[name] = t
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load %s: no tensors in the file", path)
	}
	return out, nil
}

func loadTorchSave(path string) (map[string]*Tensor, error) {
	ts, err := torchsave.Read(path)
	if err != nil {
		return nil, fmt.Errorf("load %s", err) // the error names the file
	}
	list := make([]safetensors.Tensor, len(ts))
	for i, t := range ts {
		list[i] = safetensors.Tensor(t)
	}
	ts = nil // list holds the records' bytes alone: fromFile drops them as it goes
	out, err := fromFile(path, nil, list, CPU, SameDType)
	// The rest of the records' bytes go back to the system at once rather
	// than at the next collection, which saving the weights would reach
	// holding both copies.
	debug.FreeOSMemory()
	return out, err
}

// Entry is one tensor of a nested dict for SavePickle: Tensor under key Name
// of the inner dict Group, or directly under Name when Group is "".
type Entry struct {
	Group, Name string
	Tensor      *Tensor
}

// PickleDicts serialises a dict of dicts of tensors in torch.save's format,
// as torch.load reads it (tensors are written from the CPU).
func PickleDicts(entries []Entry) ([]byte, error) {
	n := len(entries)
	cs := make([]*C.char, 0, 2*n)
	defer func() {
		for _, p := range cs {
			C.free(unsafe.Pointer(p))
		}
	}()
	groups := C.malloc(C.size_t(max(n, 1)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	names := C.malloc(C.size_t(max(n, 1)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	handles := C.malloc(C.size_t(max(n, 1)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(groups)
	defer C.free(names)
	defer C.free(handles)
	gs := unsafe.Slice((**C.char)(groups), max(n, 1))
	ns := unsafe.Slice((**C.char)(names), max(n, 1))
	hs := unsafe.Slice((**C.tb_tensor)(handles), max(n, 1))
	for i, e := range entries {
		if err := e.Tensor.Err(); err != nil {
			return nil, fmt.Errorf("pickle %s.%s: %w", e.Group, e.Name, err)
		}
		g, k := C.CString(e.Group), C.CString(e.Name)
		cs = append(cs, g, k)
		gs[i], ns[i], hs[i] = g, k, e.Tensor.h
	}
	var b *C.tb_bytes
	if err := check("pickle", C.tb_pickle_dicts((**C.char)(groups), (**C.char)(names), (**C.tb_tensor)(handles), C.int(n), &b)); err != nil {
		return nil, err
	}
	defer C.tb_bytes_free(b)
	return C.GoBytes(unsafe.Pointer(C.tb_bytes_data(b)), C.int(C.tb_bytes_len(b))), nil
}

// readHead reads the first n bytes of a file (fewer when it is shorter).
func readHead(path string, n int) ([]byte, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	return b[:k], err
}
