package torch

/*
#include "tb.h"
*/
import "C"

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceType is the kind of a Device.
type DeviceType int

// Device types; the values equal the bridge's codes.
const (
	DeviceCPU DeviceType = iota
	DeviceCUDA
)

// Device is where a tensor lives. The zero value is the CPU.
type Device struct {
	Type  DeviceType
	Index int
}

// CPU is the host.
var CPU = Device{}

// CUDA returns GPU number n.
func CUDA(n int) Device { return Device{Type: DeviceCUDA, Index: n} }

func (d Device) String() string {
	if d.Type == DeviceCUDA {
		return "cuda:" + strconv.Itoa(d.Index)
	}
	return "cpu"
}

// IsCUDA reports whether d is a GPU.
func (d Device) IsCUDA() bool { return d.Type == DeviceCUDA }

// ParseDevice reads "cpu", "cuda" or "cuda:N". "auto" picks the first GPU
// when one is available, else the CPU.
func ParseDevice(s string) (Device, error) {
	switch {
	case s == "cpu":
		return CPU, nil
	case s == "auto":
		if CUDADeviceCount() > 0 {
			return CUDA(0), nil
		}
		return CPU, nil
	case s == "cuda":
		return CUDA(0), nil
	case strings.HasPrefix(s, "cuda:"):
		n, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || n < 0 {
			return Device{}, fmt.Errorf("bad device %q: want cuda:N with N >= 0", s)
		}
		return CUDA(n), nil
	}
	return Device{}, fmt.Errorf("unknown device %q (want cpu, cuda, cuda:N or auto)", s)
}

// CUDADeviceCount is the number of GPUs libtorch can use (0 with a CPU-only
// bridge).
func CUDADeviceCount() int { return int(C.tb_cuda_device_count()) }

// CUDAAvailable reports whether at least one GPU is usable.
func CUDAAvailable() bool { return CUDADeviceCount() > 0 }

// SetCurrentDevice makes d the current device of the calling thread (the
// compute thread), as torch.cuda.set_device does: tensors name their
// device, but a kernel without a device guard of its own launches on the
// current one, which is GPU 0 unless set. A no-op on the CPU.
func SetCurrentDevice(d Device) error {
	return check("set_current_device", C.tb_set_current_device(C.int(d.Type), C.int(d.Index)))
}

// Synchronize waits for all queued work on d (a no-op on the CPU).
func Synchronize(d Device) error {
	return check("synchronize", C.tb_synchronize(C.int(d.Type), C.int(d.Index)))
}
