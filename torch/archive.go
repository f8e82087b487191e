package torch

/*
#include <stdlib.h>
#include "tb.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// LoadArchive reads the tensors of a PyTorch file: a TorchScript archive
// (OpenAI's CLIP releases; its parameters and buffers by their dotted names)
// or a torch.save pickle of a state dict (nested dicts flatten to dotted
// names). Tensors land on the CPU in their stored dtype. No Python code in
// the file is run: libtorch's unpickler only rebuilds data.
func LoadArchive(path string) (map[string]*Tensor, error) {
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
