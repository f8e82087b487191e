package atomicfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"madclip/authorship"
)

// ours is a file madclip wrote, as package authorship tells: a JSON
// document with its version.
const ours = `{"madclip_version": "test"}`

func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	if err := os.WriteFile(p, []byte(ours), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, "new contents")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "new contents" || st.Mode().Perm() != 0o600 {
		t.Errorf("got %q mode %v, want the replaced file's 0600", b, st.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// A name as long as the filesystem takes is written: its temporary's name,
// which adds a process id and a random suffix, is cut to fit.
func TestWriteLongName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, strings.Repeat("d", 251)+".png")
	if err := Write(p, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, "x")
		return err
	}); err != nil {
		t.Fatalf("a 255-byte name: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestFailedWriteLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	os.WriteFile(p, []byte(ours), 0o644)
	boom := errors.New("boom")
	err := Write(p, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != ours {
		t.Errorf("old file changed to %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// A folder that cannot be (a file is in its place) is an error naming
	// the path.
	q := filepath.Join(p, "x")
	if err := Write(q, 0o644, func(io.Writer) error { return nil }); err == nil || !strings.Contains(err.Error(), q) {
		t.Errorf("write under a file: %v", err)
	}
}

// TestWriteRefusesNonRegular: folders, named pipes, devices and dangling
// links are left alone with an error naming the path; a link to a regular
// file is written through and stays a link.
func TestWriteRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere"), dangling)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	fill := func(w io.Writer) error { _, err := io.WriteString(w, "x"); return err }
	// /dev/stdout when it is a pipe: a link, through /proc, to no path.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for _, c := range []struct{ path, want string }{
		{fmt.Sprintf("/proc/self/fd/%d", pw.Fd()), "it leads to a named pipe, not a regular file"},
		{fifo, "a named pipe"},
		{sub, "a folder"},
		{"/dev/null", "a character device"},
		{dangling, "symbolic link"},
	} {
		err := Write(c.path, 0o644, fill)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: error %v, want one naming it and %q", c.path, err, c.want)
		}
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the pipe was replaced: %v %v", st, err)
	}
	if st, err := os.Lstat("/dev/null"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("/dev/null was replaced: %v", err)
	}

	real := filepath.Join(dir, "real.txt")
	os.WriteFile(real, []byte(ours), 0o640)
	link := filepath.Join(dir, "link.txt")
	os.Symlink("real.txt", link)
	if err := Write(link, 0o644, fill); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Lstat(link); st.Mode()&os.ModeSymlink == 0 {
		t.Error("the link was replaced by a file")
	}
	b, _ := os.ReadFile(real)
	st, _ := os.Stat(real)
	if string(b) != "x" || st.Mode().Perm() != 0o640 {
		t.Errorf("target %q mode %v, want \"x\" 0640", b, st.Mode().Perm())
	}
}

// TestWriteKeepsOthersFiles: a file madclip did not write is refused and
// left as it was, through a link too; an empty file is replaced; Replace,
// for files at madclip's own names, replaces any regular file.
func TestWriteKeepsOthersFiles(t *testing.T) {
	dir := t.TempDir()
	fill := func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }
	notes := filepath.Join(dir, "notes.json")
	os.WriteFile(notes, []byte(`{"mine": 1}`), 0o644)
	link := filepath.Join(dir, "link.json")
	os.Symlink("notes.json", link)
	for _, p := range []string{notes, link} {
		err := Write(p, 0o644, fill)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "madclip did not write it") {
			t.Errorf("%s: error %v, want a refusal naming it", p, err)
		}
		if _, _, err := Destination(p, authorship.None); err == nil {
			t.Errorf("Destination(%s) accepted someone else's file", p)
		}
	}
	if b, _ := os.ReadFile(notes); string(b) != `{"mine": 1}` {
		t.Errorf("the user's file became %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files left: %v", entries)
	}
	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(empty, nil, 0o644)
	if err := Write(empty, 0o644, fill); err != nil {
		t.Errorf("empty file: %v", err)
	}
	if err := Replace(notes, 0o644, fill); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(notes); string(b) != "new" {
		t.Errorf("Replace wrote %q", b)
	}
	if got := Target(link); got != notes {
		t.Errorf("Target(link) = %s, want %s", got, notes)
	}
}

// TestStaleTemporariesRemoved: a temporary of a dead writer goes, one of a
// live writer, one that madclip did not write and other files stay.
func TestStaleTemporariesRemoved(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ck.safetensors")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	dead := filepath.Join(dir, fmt.Sprintf(".ck.safetensors.tmp-p%d-123", cmd.Process.Pid))
	live := filepath.Join(dir, fmt.Sprintf(".ck.safetensors.tmp-p%d-456", os.Getpid()))
	other := filepath.Join(dir, ".other.tmp-p1-1")
	unmarked := filepath.Join(dir, fmt.Sprintf(".ck.safetensors.tmp-p%d-789", cmd.Process.Pid))
	os.WriteFile(dead, nil, 0o644) // killed before its first bytes
	for _, f := range []string{live, other, unmarked} {
		os.WriteFile(f, []byte("partial"), 0o644)
	}
	if err := Write(p, 0o644, func(w io.Writer) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("the dead writer's temporary is still there")
	}
	for _, f := range []string{live, other, unmarked, p} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s was removed: %v", f, err)
		}
	}
}

// TestErrorsNameTheUsersPath: a failing write names the path asked for,
// never the temporary file.
func TestErrorsNameTheUsersPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.png")
	err := Write(p, 0o644, func(w io.Writer) error {
		tmp, _ := filepath.Glob(filepath.Join(dir, ".out.png.tmp-*"))
		if len(tmp) != 1 {
			t.Fatalf("temporaries %v", tmp)
		}
		return &os.PathError{Op: "write", Path: tmp[0], Err: syscall.ENOSPC}
	})
	if err == nil || strings.Contains(err.Error(), ".tmp-") || !strings.Contains(err.Error(), p) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %v", err)
	}
	// A rename that fails (a folder put at the path meanwhile) names the
	// path, not the temporary.
	r := filepath.Join(dir, "raced.png")
	err = Replace(r, 0o644, func(w io.Writer) error {
		os.MkdirAll(filepath.Join(r, "inside"), 0o755)
		return nil
	})
	if err == nil || strings.Contains(err.Error(), ".tmp-") || !strings.Contains(err.Error(), r) {
		t.Errorf("failed rename: %v", err)
	}
	// An error about another file (an input) keeps that file's name.
	err = Write(p, 0o644, func(w io.Writer) error {
		_, err := os.Open(filepath.Join(dir, "input.png"))
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "input.png") {
		t.Errorf("error %v lost the input's name", err)
	}
	// A folder where nothing can be created (procfs refuses even root).
	err = Write("/proc/out.png", 0o644, func(w io.Writer) error { return nil })
	if err == nil || strings.Contains(err.Error(), ".tmp-") || !strings.Contains(err.Error(), "write /proc/out.png: cannot create a file in /proc: ") {
		t.Errorf("error %v", err)
	}
}

// TestNewFilesHonourUmask: a new file gets perm less the umask, as open(2)
// would give it (a umask of 077 keeps medical outputs private); a replaced
// file keeps its own mode.
func TestNewFilesHonourUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	write := func(p string) os.FileMode {
		t.Helper()
		if err := Write(p, 0o644, func(w io.Writer) error { _, err := w.Write([]byte("x")); return err }); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if got := write(filepath.Join(dir, "private.json")); got != 0o600 {
		t.Errorf("umask 077: mode %o, want 600", got)
	}
	syscall.Umask(0o022)
	if got := write(filepath.Join(dir, "shared.json")); got != 0o644 {
		t.Errorf("umask 022: mode %o, want 644", got)
	}
	kept := filepath.Join(dir, "kept.json")
	os.WriteFile(kept, nil, 0o640)
	os.Chmod(kept, 0o640)
	if got := write(kept); got != 0o640 {
		t.Errorf("replaced 0640 file: mode %o, want 640", got)
	}
}

// TestWriteKeepsOtherKinds: what Write wrote decides, at the end, whether
// it may replace the madclip file there: a report never takes a
// checkpoint's place, and the checkpoint and the temporary are left as
// they were; a file of the same kind is replaced.
func TestWriteKeepsOtherKinds(t *testing.T) {
	dir := t.TempDir()
	header := `{"__metadata__":{"madclip":"{}","written_by":"madclip"}}`
	ck := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	ck = append(ck, header...)
	p := filepath.Join(dir, "ck.safetensors")
	os.WriteFile(p, ck, 0o644)
	report := func(w io.Writer) error { _, err := io.WriteString(w, ours); return err }
	err := Write(p, 0o644, report)
	if err == nil || !strings.Contains(err.Error(), "write "+p+": it holds a madclip checkpoint; refusing to replace it with a JSON report") {
		t.Errorf("a report over a checkpoint: %v", err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, ck) {
		t.Error("the checkpoint was changed")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("temporaries left: %v", left)
	}
	if _, _, err := Destination(p, authorship.JSON); err == nil {
		t.Error("Destination accepted a report at a checkpoint's path")
	}
	if _, _, err := Destination(p, authorship.Checkpoint); err != nil {
		t.Errorf("Destination for a checkpoint: %v", err)
	}
	again := func(w io.Writer) error { _, err := w.Write(ck); return err }
	if err := Write(p, 0o644, again); err != nil {
		t.Errorf("a checkpoint over a checkpoint: %v", err)
	}
}

// TestFolder: the folder of a path as the kernel reads it, ".." after a
// link included.
func TestFolder(t *testing.T) {
	for in, want := range map[string]string{
		"x": ".", "a/x": "a", "a//x": "a", "/x": "/", "//x": "/", "/": "/", "": ".",
		"lnk/../new/y": "lnk/../new", "a/b/": "a", "../x": "..",
	} {
		if got := Folder(in); got != want {
			t.Errorf("Folder(%q) = %q, want %q", in, got, want)
		}
	}
	// Written through a link and "..": the file lands where the kernel
	// puts it, beside the link's target, with no folder made elsewhere.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "other", "sub"), 0o755)
	os.MkdirAll(filepath.Join(dir, "other", "new"), 0o755)
	os.MkdirAll(filepath.Join(dir, "w"), 0o755)
	os.Symlink(filepath.Join("..", "other", "sub"), filepath.Join(dir, "w", "lnk"))
	p := filepath.Join(dir, "w", "lnk") + "/../new/y.txt"
	if err := Replace(p, 0o644, func(w io.Writer) error { _, err := w.Write([]byte("y")); return err }); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "other", "new", "y.txt")); err != nil || string(b) != "y" {
		t.Errorf("not written beside the link's target: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "w", "new")); err == nil {
		t.Error("a folder was made beside the link")
	}
}

// TestFolderMadeAgain: a folder removed between the check and the write
// (another run that made it failed) is made again, not a lost output.
func TestFolderMadeAgain(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gone", "x.txt")
	if err := Replace(p, 0o644, func(w io.Writer) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// A write that fails removes the folder it made again.
	q := filepath.Join(t.TempDir(), "gone", "x.txt")
	boom := errors.New("boom")
	if err := Replace(q, 0o644, func(w io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Dir(q)); err == nil {
		t.Error("a failed write left the folder it made")
	}
}

func TestWriteKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file another owner needs root")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "out.json")
	if err := os.WriteFile(p, []byte(ours), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 4321, 8765); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, ours)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Uid != 4321 || sys.Gid != 8765 || st.Mode().Perm() != 0o640 {
		t.Errorf("owner %d:%d mode %v, want the replaced file's 4321:8765 0640", sys.Uid, sys.Gid, st.Mode().Perm())
	}
}
