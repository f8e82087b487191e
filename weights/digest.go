package weights

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"madclip/atomicfile"
	"madclip/internal/regularfile"
	"madclip/torch/safetensors"
)

// Digest identifies CLIP weights by their content, not their file: the
// SHA-256 over every tensor, in name order, of its name, dtype, shape and
// bytes. Two converters that write the same tensors with their metadata in
// another order, or other header metadata, give the same digest.
//
// The digest of a file is remembered in the user cache by its absolute
// path, size, inode and modification and change times, so that a later
// run does not read 0.9 GB again. The change time cannot be set back by a
// user (touch -r restores only the modification time), so weights edited
// in place are hashed again.
func Digest(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	key, err := keyOf(abs)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if d, ok := readDigestCache()[key]; ok {
		return d, nil
	}
	f, err := safetensors.Open(abs)
	if err != nil {
		return "", err
	}
	d, err := digestOf(f)
	f.Close()
	if errors.Is(err, errNonFinite) {
		return "", fmt.Errorf("CLIP weights %s: %w", path, err)
	}
	if err != nil {
		return "", err
	}
	rememberDigest(key, d)
	return d, nil
}

// rememberDigest adds one digest to the cache. The cache is read again
// and rewritten under an exclusive lock, so that runs hashing other files
// at the same time do not drop each other's entries. It is best effort: a
// cache that cannot be written (a read-only home, a full disk) costs only
// hashing the file again next time, so no failure here is an error.
func rememberDigest(key digestKey, d string) {
	p := digestCachePath()
	if p == "" || os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	// Our own lock file: never through a link, never a pipe or a device.
	lock, err := os.OpenFile(p+".lock", os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return
	}
	defer lock.Close()
	if st, err := lock.Stat(); err != nil || !st.Mode().IsRegular() {
		return
	}
	if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX) != nil {
		return
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	cache := readDigestCache()
	cache[key] = d
	writeDigestCache(cache)
}

// errNonFinite is a tensor holding NaN or infinity: no CLIP has one, and a
// model on it scores NaN.
var errNonFinite = errors.New("holds NaN or infinite values: the file is corrupt")

// nonFinite reports whether little-endian floating-point data of dtype
// holds a NaN or an infinity (every exponent bit set); other dtypes hold
// none.
func nonFinite(dtype string, b []byte) bool {
	switch dtype {
	case "F16", "BF16": // the exponent's bits
		exp := uint16(0x7c00)
		if dtype == "BF16" {
			exp = 0x7f80
		}
		for i := 0; i+1 < len(b); i += 2 {
			if binary.LittleEndian.Uint16(b[i:])&exp == exp {
				return true
			}
		}
	case "F32":
		for i := 0; i+3 < len(b); i += 4 {
			if binary.LittleEndian.Uint32(b[i:])&0x7f800000 == 0x7f800000 {
				return true
			}
		}
	case "F64":
		for i := 0; i+7 < len(b); i += 8 {
			if binary.LittleEndian.Uint64(b[i:])&0x7ff0000000000000 == 0x7ff0000000000000 {
				return true
			}
		}
	}
	return false
}

// digestOf hashes a parsed file's tensors canonically, and refuses one
// that holds NaN or infinity (so that a digest, remembered or not, is of
// finite weights).
func digestOf(f *safetensors.File) (string, error) {
	ts := append([]safetensors.Tensor(nil), f.Tensors...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	h := sha256.New()
	var n [8]byte
	var buf []byte // one tensor's bytes at a time, reused
	field := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, t := range ts {
		field([]byte(t.Name))
		field([]byte(t.DType))
		binary.LittleEndian.PutUint64(n[:], uint64(len(t.Shape)))
		h.Write(n[:])
		for _, d := range t.Shape {
			binary.LittleEndian.PutUint64(n[:], uint64(d))
			h.Write(n[:])
		}
		data, err := f.Read(t, buf)
		if err != nil {
			return "", err
		}
		buf = data
		if nonFinite(string(t.DType), data) {
			return "", fmt.Errorf("tensor %s %w", t.Name, errNonFinite)
		}
		field(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// digestKey is what the cache knows a file by: a change to its content
// changes one of these.
type digestKey struct {
	Path       string `json:"path"`
	Size       int64  `json:"size"`
	Inode      uint64 `json:"inode"`
	ModTime    int64  `json:"mtime_ns"`
	ChangeTime int64  `json:"ctime_ns"`
}

// keyOf reads the key of the regular file at abs.
func keyOf(abs string) (digestKey, error) {
	st, err := os.Stat(abs)
	if err != nil {
		return digestKey{}, err
	}
	if !st.Mode().IsRegular() {
		return digestKey{}, errors.New("not a regular file")
	}
	k := digestKey{Path: abs, Size: st.Size(), ModTime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		k.Inode, k.ChangeTime = sys.Ino, sys.Ctim.Nano()
	}
	return k, nil
}

// digestCachePath is the file that remembers digests (in the user cache).
func digestCachePath() string {
	c, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(c, "madclip", "digests.json")
}

// maxDigestCache bounds what is read of the cache: a few hundred bytes an
// entry.
const maxDigestCache = 16 << 20

// ownRegular reports whether the cache file at p is a regular file itself,
// not a link to one: the cache never reads or writes through a link, which
// could point at a user's file.
func ownRegular(p string) bool {
	st, err := os.Lstat(p)
	return err == nil && st.Mode().IsRegular()
}

type cacheEntry struct {
	digestKey
	Digest string `json:"digest"`
}

// readDigestCache reads the remembered digests; a missing or unreadable
// cache is empty (it is only a shortcut).
func readDigestCache() map[digestKey]string {
	m := map[digestKey]string{}
	p := digestCachePath()
	if p == "" {
		return m
	}
	if !ownRegular(p) {
		return m
	}
	f, err := regularfile.Open(p)
	if err != nil {
		return m
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDigestCache))
	if err != nil {
		return m
	}
	var entries []cacheEntry
	if json.Unmarshal(b, &entries) != nil {
		return m
	}
	for _, e := range entries {
		m[e.digestKey] = e.Digest
	}
	return m
}

// writeDigestCache stores the digests, dropping entries whose file changed
// or went; failures are ignored (the cache is only a shortcut).
func writeDigestCache(m map[digestKey]string) {
	p := digestCachePath()
	if p == "" || os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	if _, err := os.Lstat(p); err == nil && !ownRegular(p) {
		return // not ours to replace
	}
	var entries []cacheEntry
	for k, d := range m {
		if now, err := keyOf(k.Path); err == nil && now == k {
			entries = append(entries, cacheEntry{k, d})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	b, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return
	}
	_ = atomicfile.Replace(p, 0o644, func(w io.Writer) error { // best effort, as rememberDigest
		_, err := w.Write(b)
		return err
	})
}

// ErrNoMatch is returned when no file in the searched folders has the
// digest.
var ErrNoMatch = errors.New("no weights with this digest")

// FindDigest looks through the .safetensors files of dirs (the weights
// folders, and any other given) for the one whose Digest is digest.
func FindDigest(digest string, dirs ...string) (string, error) {
	seen := map[string]bool{}
	for _, d := range append(dirs, Dirs()...) {
		entries, _ := os.ReadDir(d) // not a glob: a folder may be named "g[1]"
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".safetensors") {
				continue
			}
			abs, err := filepath.Abs(filepath.Join(d, e.Name()))
			if err != nil || seen[abs] {
				continue
			}
			seen[abs] = true
			if got, err := Digest(abs); err == nil && got == digest {
				return abs, nil
			}
		}
	}
	return "", ErrNoMatch
}
