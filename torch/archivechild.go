package torch

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"unsafe"

	"madclip/authorship"
	"madclip/internal/regularfile"
	"madclip/torch/safetensors"
	"madclip/torch/torchsave"
)

// archiveChildEnv names the archive a child process started by loadInChild
// is to read; its presence is what makes a process a child.
const archiveChildEnv = "MADCLIP_INTERNAL_LOAD_ARCHIVE"

// childMark is the metadata key by which the child's answer is recognised,
// so that a binary that does not serve the child (its output is something
// else) is told apart from one that does.
const childMark = "madclip_archive_child"

// ServeArchiveChild makes this process LoadArchive's child when it was
// started as one: it reads the archive with libtorch, writes its tensors to
// standard output as safetensors and exits (1 with a one-line error on
// standard error). Otherwise it returns at once. Every program that calls
// LoadArchive calls it first thing in main, test binaries in TestMain.
func ServeArchiveChild() {
	path, ok := os.LookupEnv(archiveChildEnv)
	if !ok {
		return
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	err := serveArchive(path, w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
	os.Exit(0)
}

func serveArchive(path string, w io.Writer) error {
	return Do(func() error {
		ts, err := loadHere(path)
		if err != nil {
			return err
		}
		defer func() {
			for _, t := range ts {
				t.Free()
			}
		}()
		// One tensor's bytes at a time: the child holds the archive's
		// tensors once, not twice.
		specs, bytesOf, err := streamed(ts)
		if err != nil {
			return fmt.Errorf("load %s: %w", path, err)
		}
		return safetensors.WriteStream(w, specs, map[string]string{childMark: "1"}, bytesOf)
	})
}

// loadInChild runs libtorch's archive reader in a child process (this
// program, started again with archiveChildEnv set) and takes the tensors
// from its output. A crash there is reported as this file's problem.
func loadInChild(path string) (map[string]*Tensor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("load %s: cannot start the archive reader: %w", path, err)
	}
	// -test.run=^$ makes a test binary that does not serve the child run
	// nothing; madclip itself never sees it (ServeArchiveChild exits first).
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), archiveChildEnv+"="+path)
	stderr := &headBuffer{max: 64 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("load %s: cannot start the archive reader: %w", path, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("load %s: cannot start the archive reader: %w", path, err)
	}
	limit := int64(4 << 30)
	if fi, err := os.Stat(path); err == nil {
		limit = 2*fi.Size() + 64<<20 // the tensors plus a header: never more than the archive holds
	}
	// The answer streams into tensors one at a time: the archive's
	// tensors are held once here, never as a buffer of the whole answer too.
	out := map[string]*Tensor{}
	free := func() {
		for _, t := range out {
			t.Free()
		}
	}
	var answered, streamEnded bool // answered: the header is the child's
	readErr := Do(func() error {
		return safetensors.ReadStream(stdout, limit, func(f *safetensors.File) error {
			if f.Metadata[childMark] != "1" {
				return errors.New("not the archive reader's answer")
			}
			answered = true
			return nil
		}, func(st safetensors.Tensor, data []byte) error {
			var p unsafe.Pointer
			if len(data) > 0 {
				p = unsafe.Pointer(&data[0])
			}
			t := FromHost(p, len(data), stDTypes[st.DType], st.Shape, stDTypes[st.DType], CPU)
			if t.err != nil {
				t.Free()
				return fmt.Errorf("load %s: tensor %s: %w", path, st.Name, t.err)
			}
			out[st.Name] = t
			return nil
		})
	})
	if readErr != nil {
		free()
		// A child that stopped writing has ended or is ending: its own end
		// says what went wrong. One still writing is stopped.
		streamEnded = errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF)
		if !streamEnded {
			cmd.Process.Kill()
		}
	}
	waitErr := cmd.Wait()
	switch {
	case waitErr != nil && (readErr == nil || streamEnded):
		free()
		return nil, childFailure(path, waitErr, stderr.String())
	case readErr != nil && !answered:
		return nil, fmt.Errorf("load %s: the archive reader did not answer (this program does not call torch.ServeArchiveChild)", path)
	case readErr != nil && strings.HasPrefix(readErr.Error(), "load "):
		return nil, readErr
	case readErr != nil:
		return nil, fmt.Errorf("load %s: the archive reader's answer: %w", path, readErr)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load %s: no tensors in the file", path)
	}
	return out, nil
}

// childFailure turns the child's end into one line: its own error when it
// gave one, otherwise what stopped it.
func childFailure(path string, waitErr error, stderr string) error {
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) && ee.ExitCode() == 1 {
		// Its error is its last line (libtorch may have warned before it).
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if line := strings.TrimSpace(lines[len(lines)-1]); strings.HasPrefix(line, "load ") {
			return errors.New(line)
		}
	}
	how := waitErr.Error()
	switch {
	case strings.Contains(stderr, "SIGSEGV"), strings.Contains(stderr, "SIGBUS"):
		how = "a memory fault"
	case errors.As(waitErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			how = "signal " + ws.Signal().String()
		}
	}
	return fmt.Errorf("load %s: libtorch's archive reader crashed on this file (%s): it is damaged, or not an archive PyTorch wrote", path, how)
}

// checkRecords refuses a zip archive (one CheckArchive accepted) with a
// record whose checksum is wrong: libtorch's reader is not safe on it.
func checkRecords(path string) error {
	z, err := zip.OpenReader(path)
	if err != nil {
		return notZip(path, err)
	}
	defer z.Close()
	for _, f := range z.File {
		r, err := f.Open()
		if err == nil {
			_, err = io.Copy(io.Discard, r) // checks the record's CRC-32 at its end
			r.Close()
		}
		if err != nil {
			return fmt.Errorf("load %s: a damaged zip archive (record %s: %v)", path, f.Name, err)
		}
	}
	if err := torchsave.CheckStorageRecords(&z.Reader); err != nil {
		return fmt.Errorf("load %s: a damaged archive: %v", path, err)
	}
	return nil
}

// notZip says what the file at path is, which zip.OpenReader refused with
// zipErr.
func notZip(path string, zipErr error) error {
	if st, err := os.Stat(path); err == nil && st.Size() == 0 {
		return fmt.Errorf("load %s: an empty file (0 bytes)", path)
	}
	if f, err := safetensors.Open(path); err == nil {
		f.Close()
		return fmt.Errorf("load %s: a safetensors file, not the zip archive torch.save and TorchScript write", path)
	}
	if head, err := readHead(path, 4); err == nil && string(head) == "PK\x03\x04" {
		if hasZipEnd(path) {
			return fmt.Errorf("load %s: a damaged zip archive (its directory does not read: %v)", path, zipErr)
		}
		return fmt.Errorf("load %s: a zip archive whose end is missing (truncated, as by an interrupted download or copy)", path)
	}
	if head, err := readHead(path, 16); err == nil && authorship.Sniff(head) != "" {
		return fmt.Errorf("load %s: %s, not a PyTorch file (a zip archive as torch.save and TorchScript write) or safetensors", path, authorship.Sniff(head))
	}
	return fmt.Errorf("load %s: not a PyTorch file (neither a zip archive as torch.save and TorchScript write, nor safetensors)", path)
}

// hasZipEnd says whether the file at path ends as a zip archive does: with
// an end-of-central-directory record (its signature within the last 22 bytes
// plus the longest archive comment). A zip whose start is there but whose end
// is not was cut short; one with both is damaged inside.
func hasZipEnd(path string) bool {
	f, err := regularfile.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false
	}
	const tail = 22 + 65535
	start := max(info.Size()-tail, 0)
	b := make([]byte, info.Size()-start)
	if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
		return false
	}
	return bytes.Contains(b, []byte("PK\x05\x06"))
}

// headBuffer keeps the first max bytes written to it (a crashing child's
// stack dump can be long; only its start matters).
type headBuffer struct {
	bytes.Buffer
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
