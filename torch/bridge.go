// Package torch is madclip's tensor library: Go tensors over libtorch through
// the small C ABI in cbridge/. Tensors carry sticky errors, memory is freed
// deterministically through scopes, and all libtorch work runs on one
// goroutine locked to its OS thread (see Do).
package torch

/*
#cgo CFLAGS: -I${SRCDIR}/../cbridge
#cgo LDFLAGS: -L${SRCDIR}/../build -lmadclip_bridge -Wl,--enable-new-dtags -Wl,-rpath,${SRCDIR}/../build
#include <stdlib.h>
#include "tb.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// ErrorKind classifies the errors the bridge reports.
type ErrorKind int

// The kinds of Error. KindOOM is distinct so that callers can retry with a
// smaller batch.
const (
	KindTorch ErrorKind = iota + 1
	KindOOM
	KindIndex
	KindValue
	KindType
	KindNotImplemented
	KindArgument
	KindUnknown
	KindFreed // a tensor used after it was freed
)

func (k ErrorKind) String() string {
	switch k {
	case KindTorch:
		return "torch error"
	case KindOOM:
		return "out of memory"
	case KindIndex:
		return "index error"
	case KindValue:
		return "value error"
	case KindType:
		return "type error"
	case KindNotImplemented:
		return "not implemented"
	case KindArgument:
		return "invalid argument"
	case KindUnknown:
		return "unknown C++ error"
	case KindFreed:
		return "use of freed tensor"
	}
	return fmt.Sprintf("error kind %d", int(k))
}

// Error is an error raised by libtorch or by the bridge, caught before it
// could cross into Go.
type Error struct {
	Kind ErrorKind
	Op   string // the tensor operation that failed
	Msg  string
}

func (e *Error) Error() string {
	if e.Op == "" {
		return e.Msg
	}
	return e.Op + ": " + e.Msg
}

// Is makes errors.Is(err, ErrOOM) and friends match on the kind.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Kind == e.Kind && t.Op == "" && t.Msg == ""
	}
	return false
}

// Sentinels for errors.Is.
var (
	ErrOOM      = &Error{Kind: KindOOM}
	ErrArgument = &Error{Kind: KindArgument}
	ErrFreed    = &Error{Kind: KindFreed}
)

// check converts a bridge error object into a Go error and releases it.
func check(op string, e *C.tb_error) error {
	if e == nil {
		return nil
	}
	defer C.tb_error_free(e)
	return &Error{Kind: ErrorKind(C.tb_error_kind(e)), Op: op, Msg: C.GoString(C.tb_error_message(e))}
}

func argError(op, format string, a ...any) error {
	return &Error{Kind: KindArgument, Op: op, Msg: fmt.Sprintf(format, a...)}
}

// cBool converts a Go bool to the int the C ABI takes.
func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// int64s returns a C pointer to the slice's first element (nil when empty)
// and its length.
func int64s(s []int64) (*C.int64_t, C.int) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.int64_t)(&s[0]), C.int(len(s))
}
