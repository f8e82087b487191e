// Package regularfile opens the files madclip reads and refuses anything
// that is not a regular file: a named pipe would block the command forever,
// a device would never end, and a folder is a mistake worth naming.
package regularfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Open opens path for reading if it is a regular file (or a link to one).
// A named pipe is opened without waiting for a writer, then refused.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, Explain(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: it is %s, not a regular file", path, Kind(st.Mode()))
	}
	return f, nil
}

// Explain words err, from opening or statting path, for a user: "x.png:
// permission denied" rather than "open x.png: ...", and "a symbolic link to
// T, which does not exist" where the system says only "no such file" of a
// file the user can see.
func Explain(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		if target, lerr := os.Readlink(path); lerr == nil {
			return fmt.Errorf("%s: a symbolic link to %s, which does not exist", path, target)
		}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", path, pe.Err)
	}
	return err
}

// Check says why path cannot be read as a regular file, for paths handed to
// code that opens them itself (libtorch's readers).
func Check(path string) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// Kind names what a file that is not a regular file is, for messages.
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}
