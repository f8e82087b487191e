package torch

import "fmt"

// DType is a tensor element type.
type DType int

// The element types the bridge supports. The values equal the bridge's codes.
const (
	Float32 DType = iota
	Float64
	Float16
	BFloat16
	Int64
	Int32
	Bool
	Uint8
)

var dtypeNames = [...]string{"f32", "f64", "f16", "bf16", "i64", "i32", "bool", "u8"}
var dtypeSizes = [...]int{4, 8, 2, 2, 8, 4, 1, 1}

func (d DType) valid() bool { return d >= Float32 && d <= Uint8 }

func (d DType) String() string {
	if !d.valid() {
		return fmt.Sprintf("dtype(%d)", int(d))
	}
	return dtypeNames[d]
}

// Size is the element size in bytes.
func (d DType) Size() int {
	if !d.valid() {
		return 0
	}
	return dtypeSizes[d]
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool {
	return d == Float32 || d == Float64 || d == Float16 || d == BFloat16
}

// ParseDType reads a name such as "f32", "bf16" or "float16".
func ParseDType(s string) (DType, error) {
	switch s {
	case "f32", "float32", "float":
		return Float32, nil
	case "f64", "float64", "double":
		return Float64, nil
	case "f16", "float16", "half", "fp16":
		return Float16, nil
	case "bf16", "bfloat16":
		return BFloat16, nil
	case "i64", "int64", "long":
		return Int64, nil
	case "i32", "int32", "int":
		return Int32, nil
	case "bool":
		return Bool, nil
	case "u8", "uint8", "byte":
		return Uint8, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want f32, f64, f16, bf16, i64, i32, bool or u8)", s)
}
