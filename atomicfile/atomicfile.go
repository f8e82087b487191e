// Package atomicfile writes files so that readers see either the old file or
// the complete new one, never a partly written file, and so that writing an
// output never destroys anything but a regular file madclip wrote.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"madclip/authorship"
	"madclip/internal/regularfile"
	"madclip/internal/shortname"
)

// Write creates path by calling fill on a temporary file in the same folder,
// syncing it and renaming it over path. On any error the temporary file is
// removed and path is left as it was.
//
// What is at path decides how: nothing (the new file gets perm less the
// umask), or a regular file that madclip wrote or that is empty (whose
// mode is kept), is replaced; a symbolic link to such a file is written
// through, replacing its target as cp would; anything else (someone else's
// file, a folder, a device, a named pipe, a socket, a dangling link) is
// refused, and so is a file madclip wrote that holds another kind of thing
// than fill wrote (a checkpoint at the path of a JSON report). Package
// authorship tells madclip's files and their kinds by their mark, which
// fill must write.
// Temporaries that a killed madclip left beside path are removed first.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	return write(path, perm, fill, true)
}

// Replace is Write for a file at a name of madclip's own (a cache, a
// folder's marker), which carries no mark: any regular file there is
// replaced.
func Replace(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	return write(path, perm, fill, false)
}

func write(path string, perm os.FileMode, fill func(w io.Writer) error, marked bool) (err error) {
	target, existing, have, err := destination(path, marked, authorship.None)
	if err != nil {
		return err
	}
	dir := Folder(target)
	removeStale(dir, filepath.Base(target))
	f, remade, err := createTemp(dir, filepath.Base(target), perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			if remade {
				os.Remove(dir) // only if still empty
			}
			if r, ok := err.(refusal); ok {
				err = r.error
			} else {
				err = fmt.Errorf("write %s: %w", path, unwrapPath(err, tmp, target))
			}
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = fill(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if existing != nil { // a replaced file keeps its owner and mode
		if err = keepOwner(f, existing); err != nil {
			return err
		}
		if err = f.Chmod(existing.Mode().Perm()); err != nil {
			return err
		}
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if existing != nil && marked {
		// What was written is known now: it replaces only its own kind.
		var kind authorship.Kind
		if kind, err = authorship.Identify(tmp); err != nil {
			return err
		}
		if err = authorship.Replaceable(have, kind); err != nil {
			return refusal{fmt.Errorf("write %s%s: %w", path, linkNote(path, target), err)}
		}
	}
	return os.Rename(tmp, target)
}

// keepOwner gives f the owner and group of the file it replaces, as cp
// writing over a file would leave them. Only root can give a file away; a
// user who may replace the file but not give it its owner (a file of
// another user in a folder the user may write) gets the new file as its
// own, which the kernel would also do for cp's copy of a new file.
func keepOwner(f *os.File, existing fs.FileInfo) error {
	old, ok := existing.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	now, err := f.Stat()
	if err != nil {
		return err
	}
	if cur, ok := now.Sys().(*syscall.Stat_t); ok && cur.Uid == old.Uid && cur.Gid == old.Gid {
		return nil
	}
	if err := f.Chown(int(old.Uid), int(old.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return nil
}

// refusal is write's error that already names the path.
type refusal struct{ error }

// createTemp creates a new temporary for base in dir with mode perm, less
// the umask (the kernel applies it, as for any new file). A folder that
// has gone since the command checked it (another madclip that made it
// failed and removed it, empty) is made again, if its parent is there: a
// missing folder is otherwise the caller's error.
func createTemp(dir, base string, perm os.FileMode) (f *os.File, remade bool, err error) {
	prefix := dir + string(filepath.Separator) + tempPrefix(base) + strconv.Itoa(os.Getpid()) + "-"
	tried := false
	for {
		name := prefix + strconv.FormatUint(rand.Uint64(), 36)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if err == nil {
			return f, remade, nil
		}
		if errors.Is(err, fs.ErrNotExist) && !tried {
			tried = true
			if _, serr := os.Lstat(dir); errors.Is(serr, fs.ErrNotExist) && os.Mkdir(dir, 0o755) == nil {
				remade = true
				continue
			}
		}
		if !errors.Is(err, fs.ErrExist) { // the temporary's name means nothing to the user
			return nil, false, fmt.Errorf("cannot create a file in %s: %w", dir, unwrapPath(err, name))
		}
	}
}

// Folder is the folder that holds path as the kernel reads it: path less
// its last element, not cleaned, since "link/.." is the parent of the
// link's target, not the folder that holds the link (filepath.Dir would
// say the latter).
func Folder(path string) string {
	sep := string(filepath.Separator)
	trimmed := strings.TrimRight(path, sep)
	i := strings.LastIndex(trimmed, sep)
	if i < 0 {
		if trimmed == "" && path != "" {
			return sep // path is the root
		}
		return "."
	}
	if d := strings.TrimRight(trimmed[:i], sep); d != "" {
		return d
	}
	return sep
}

// Destination says where Write(path) would put a file of the given kind
// (None: any kind madclip writes), and what is there now (nil for
// nothing), or why it refuses: it lets a command check every output before
// it starts work.
func Destination(path string, kind authorship.Kind) (target string, existing fs.FileInfo, err error) {
	target, existing, _, err = destination(path, true, kind)
	return target, existing, err
}

// Target is where Write(path) would put its file: path, or where a link
// at path leads; path itself when that cannot be told.
func Target(path string) string {
	if st, err := os.Lstat(path); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		return path
	}
	if t, err := filepath.EvalSymlinks(path); err == nil {
		return t
	}
	return path
}

// destination is Destination for marked or unmarked (Replace) files; it
// also returns the kind of madclip file at the target, read once.
func destination(path string, marked bool, kind authorship.Kind) (target string, existing fs.FileInfo, have authorship.Kind, err error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil, authorship.None, nil
	}
	if err != nil {
		return "", nil, authorship.None, fmt.Errorf("write %s: %w", path, unwrapPath(err, path))
	}
	target = path
	if st.Mode()&fs.ModeSymlink != 0 {
		if target, err = filepath.EvalSymlinks(path); err != nil {
			// /dev/stdout and the like lead, through /proc, to a pipe or a
			// socket that has no path: the kernel still says what it is.
			if st, serr := os.Stat(path); serr == nil && !st.Mode().IsRegular() {
				return "", nil, authorship.None, fmt.Errorf("write %s: it leads to %s, not a regular file; refusing to replace it", path, regularfile.Kind(st.Mode()))
			}
			return "", nil, authorship.None, fmt.Errorf("write %s: a symbolic link whose target cannot be followed (%v)", path, unwrapPath(err, path))
		}
		if st, err = os.Stat(target); err != nil {
			return "", nil, authorship.None, fmt.Errorf("write %s: %w", path, unwrapPath(err, path))
		}
	}
	if !st.Mode().IsRegular() {
		return "", nil, authorship.None, fmt.Errorf("write %s: it is %s, not a regular file; refusing to replace it", path, regularfile.Kind(st.Mode()))
	}
	if marked {
		if have, err = authorship.Refusal(target, kind); err != nil {
			return "", nil, authorship.None, fmt.Errorf("write %s%s: %w", path, linkNote(path, target), err)
		}
	}
	return target, st, have, nil
}

// tempPrefix starts the name of a temporary for the file base; the writer's
// process id and a random suffix follow, so that a leftover can be told
// from a write in progress.
// A long name is cut and a hash of it added, so that the temporary's name
// fits wherever the file's does (255 bytes).
func tempPrefix(base string) string { return "." + shortname.Fit(base, 190) + ".tmp-p" }

// removeStale deletes temporaries for base in dir whose writer is no
// longer running (it was killed mid-write), when they are empty or carry
// madclip's mark: a file of someone else's that merely has such a name
// stays. Failures are ignored: a stale file is only clutter.
func removeStale(dir, base string) {
	prefix := tempPrefix(base)
	names, err := filepath.Glob(filepath.Join(dir, globEscape(prefix)+"*"))
	if err != nil {
		return
	}
	for _, name := range names {
		rest := strings.TrimPrefix(filepath.Base(name), prefix)
		pid, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '-'), 0)])
		if err != nil || pid <= 0 || running(pid) {
			continue
		}
		if st, err := os.Lstat(name); err == nil && st.Mode().IsRegular() {
			if ours, err := authorship.Written(name); err == nil && ours {
				os.Remove(name)
			}
		}
	}
}

// running reports whether a process with this id exists.
func running(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unwrapPath drops the operation and path of an *fs.PathError about one of
// ours (the temporary, the destination), keeping the cause, since callers
// name the user's path; errors about other files pass unchanged.
func unwrapPath(err error, ours ...string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && slices.Contains(ours, pe.Path) {
		return pe.Err
	}
	var le *os.LinkError // the rename of the temporary
	if errors.As(err, &le) && slices.Contains(ours, le.Old) {
		return le.Err
	}
	return err
}

// linkNote names where a link at path leads, for a message about the file
// there.
func linkNote(path, target string) string {
	if target == path {
		return ""
	}
	return " (a link to " + target + ")"
}
