package torch

import (
	"fmt"
	"runtime/debug"
	"strings"
	"unsafe"

	"madclip/torch/safetensors"
)

var stDTypes = map[safetensors.DType]DType{
	safetensors.F32: Float32, safetensors.F64: Float64, safetensors.F16: Float16,
	safetensors.BF16: BFloat16, safetensors.I64: Int64, safetensors.I32: Int32,
	safetensors.U8: Uint8, safetensors.Bool: Bool,
}

// SafetensorsDType maps a tensor dtype to its safetensors name.
func SafetensorsDType(d DType) safetensors.DType {
	for k, v := range stDTypes {
		if v == d {
			return k
		}
	}
	return ""
}

// SameDType, given as a load's float dtype, keeps each tensor's stored dtype.
const SameDType DType = -1

// LoadSafetensors reads every tensor of a safetensors file onto dev. Floating-
// point tensors are converted to floatDType unless it is SameDType. The file
// is read a tensor at a time, never mapped (a mapped file cut short by
// another program would end the process with a bus error). On error no
// tensor stays allocated.
func LoadSafetensors(path string, dev Device, floatDType DType) (map[string]*Tensor, map[string]string, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		if strings.HasPrefix(err.Error(), path+": ") {
			return nil, nil, fmt.Errorf("load %w", err) // it names the file already
		}
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	out, err := fromFile(path, f, f.Tensors, dev, floatDType)
	if err != nil {
		return nil, nil, err
	}
	return out, f.Metadata, nil
}

// fromFile makes tensors on dev of the tensors read from the file at path
// (floating-point ones converted to floatDType unless it is SameDType): from
// f, which reads their bytes, or from their Data when f is nil. Data is
// dropped from list as each tensor is made, and given back to the system
// every so often, so that the bytes are not held twice. On error no tensor
// stays allocated.
func fromFile(path string, f *safetensors.File, list []safetensors.Tensor, dev Device, floatDType DType) (map[string]*Tensor, error) {
	out := make(map[string]*Tensor, len(list))
	free := func() {
		for _, o := range out {
			o.Free()
		}
	}
	var buf []byte // one tensor's bytes at a time, reused
	dropped := 0   // bytes of Data dropped since they were last given back
	for i, st := range list {
		data := st.Data
		if f != nil {
			var err error
			if data, err = f.Read(st, buf); err != nil {
				free()
				return nil, fmt.Errorf("load %w", err)
			}
			buf = data
		}
		src := stDTypes[st.DType]
		dt := src
		if floatDType != SameDType && src.IsFloat() {
			dt = floatDType
		}
		var p unsafe.Pointer
		if len(data) > 0 {
			p = unsafe.Pointer(&data[0])
		}
		t := FromHost(p, len(data), src, st.Shape, dt, dev)
		if t.err != nil {
			free()
			t.Free()
			return nil, fmt.Errorf("load %s: tensor %s: %w", path, st.Name, t.err)
		}
		out[st.Name] = t
		if f == nil {
			list[i].Data = nil
			if dropped += len(data); dropped >= 128<<20 {
				debug.FreeOSMemory()
				dropped = 0
			}
		}
	}
	return out, nil
}

// SaveSafetensors writes tensors (each in its own dtype) and metadata to path
// atomically.
func SaveSafetensors(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	specs, bytesOf, err := streamed(tensors)
	if err == nil {
		err = safetensors.WriteFileStream(path, specs, metadata, bytesOf)
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// streamed describes tensors for safetensors.WriteStream: each one's name,
// dtype and shape, and a function that copies spec i's bytes out of
// libtorch when it is written, so that writing gigabytes of weights holds
// one tensor's bytes at a time, not a second copy of them all.
func streamed(tensors map[string]*Tensor) ([]safetensors.Tensor, func(i int) ([]byte, error), error) {
	specs := make([]safetensors.Tensor, 0, len(tensors))
	dtypes := make([]DType, 0, len(tensors))
	for name, t := range tensors {
		in, err := t.Info()
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		st := SafetensorsDType(in.DType)
		if st == "" {
			return nil, nil, fmt.Errorf("tensor %s: dtype %s is not one madclip reads", name, in.DType)
		}
		specs = append(specs, safetensors.Tensor{Name: name, DType: st, Shape: in.Shape})
		dtypes = append(dtypes, in.DType)
	}
	return specs, func(i int) ([]byte, error) { return tensors[specs[i].Name].Bytes(dtypes[i]) }, nil
}
