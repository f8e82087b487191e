package dataset

import (
	"bufio"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"madclip/internal/regularfile"
)

// Shots are the names of the few-shot images: k normal and k abnormal.
type Shots struct {
	Normal, Abnormal []string
}

// ReadShotsFile reads a few-shot list in the authors' format: lines
// "n-I: a.png b.png" (normal) and "a-I: ..." (abnormal), I the draw's
// index; index picks one.
func ReadShotsFile(path string, index int) (Shots, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return Shots{}, err
	}
	defer f.Close()
	return parseShots(f, path, index)
}

// The authors' few-shot lists (MIT, Copyright (c) 2024 MediaBrain-SJTU; the
// notice is in fewshot_seed/LICENSE): fewshot_seed/{Obj}/my{k}-shot.txt for
// the six benchmark datasets and k = 2, 4, 8, 16.
//
//go:embed fewshot_seed
var authorsLists embed.FS

// AuthorsShotCounts are the shot counts the authors published lists for.
func AuthorsShotCounts() []int { return []int{2, 4, 8, 16} }

// AuthorsShotsName names the authors' k-shot list of a benchmark dataset as
// checkpoints record it ("authors:Brain/my16-shot.txt").
func AuthorsShotsName(name string, k int) string {
	return fmt.Sprintf("authors:%s/my%d-shot.txt", name, k)
}

// HasAuthorsShots reports whether the authors published a k-shot list for
// the dataset called name.
func HasAuthorsShots(name string, k int) bool {
	_, err := fs.Stat(authorsLists, authorsPath(name, k))
	return err == nil
}

func authorsPath(name string, k int) string {
	return fmt.Sprintf("fewshot_seed/%s/my%d-shot.txt", name, k)
}

// AuthorsShots returns the authors' fixed k-shot list of a benchmark
// dataset (the paper's protocol: one fixed set of k normal and k abnormal
// images per dataset and k).
func AuthorsShots(name string, k int) (Shots, error) {
	f, err := authorsLists.Open(authorsPath(name, k))
	if err != nil {
		return Shots{}, fmt.Errorf("the authors published no %d-shot list for %q (they did for %s with %v shots)",
			k, name, benchmarkNames(), AuthorsShotCounts())
	}
	defer f.Close()
	return parseShots(f, AuthorsShotsName(name, k), 0)
}

// OpenShots reads a few-shot list recorded by AuthorsShotsName or a path.
func OpenShots(file string, index int) (Shots, error) {
	if rest, ok := strings.CutPrefix(file, "authors:"); ok {
		name, kfile, _ := strings.Cut(rest, "/")
		var k int
		if _, err := fmt.Sscanf(kfile, "my%d-shot.txt", &k); err != nil {
			return Shots{}, fmt.Errorf("%s: not an authors' list name", file)
		}
		return AuthorsShots(name, k)
	}
	return ReadShotsFile(file, index)
}

func benchmarkNames() string {
	var n []string
	for _, b := range benchmarks {
		n = append(n, b.Name)
	}
	return strings.Join(n, ", ")
}

// maxShotsLine is the longest line a shots file may have: the authors'
// lists are a few kilobytes.
const maxShotsLine = 1 << 22

func parseShots(r io.Reader, path string, index int) (Shots, error) {
	var s Shots
	firstLine := map[string]int{} // "n/name" → the line that lists it
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), maxShotsLine)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 { // a byte-order mark, as some Windows editors save text
			text = strings.TrimPrefix(text, "\ufeff")
		}
		if text == "" {
			continue
		}
		key, files, ok := strings.Cut(text, ":")
		if !ok {
			return Shots{}, fmt.Errorf("%s:%d: want \"n-0: files...\" or \"a-0: files...\"", path, line)
		}
		kind, num, _ := strings.Cut(strings.TrimSpace(key), "-")
		idx, err := strconv.Atoi(num)
		if err != nil || idx < 0 || (kind != "n" && kind != "a") {
			return Shots{}, fmt.Errorf("%s:%d: unknown key %q (want n-I or a-I, I a number)", path, line, key)
		}
		if idx != index {
			continue
		}
		names := strings.Fields(files)
		for _, n := range names {
			if first, dup := firstLine[kind+"/"+n]; dup {
				class := map[string]string{"n": "normal", "a": "abnormal"}[kind]
				return Shots{}, fmt.Errorf("%s:%d: shot %s is listed twice among the %s shots (first on line %d)", path, line, n, class, first)
			}
			firstLine[kind+"/"+n] = line
		}
		if kind == "n" {
			s.Normal = append(s.Normal, names...)
		} else {
			s.Abnormal = append(s.Abnormal, names...)
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return Shots{}, fmt.Errorf("%s:%d: a line longer than %d bytes: not a shots file", path, line+1, maxShotsLine)
	} else if err != nil {
		return Shots{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(s.Normal) == 0 || len(s.Abnormal) == 0 {
		return Shots{}, fmt.Errorf("%s: no n-%d and a-%d lists", path, index, index)
	}
	if len(s.Normal) != len(s.Abnormal) {
		return Shots{}, fmt.Errorf("%s: %d normal and %d abnormal shots; the lists must be balanced", path, len(s.Normal), len(s.Abnormal))
	}
	return s, nil
}

// authorsNames returns every file name the authors' lists of a dataset use,
// normal and abnormal, sorted (synthetic datasets carry these names so that
// the paper's protocol runs on them).
func authorsNames(name string) (normal, abnormal []string) {
	seenN, seenA := map[string]bool{}, map[string]bool{}
	for _, k := range AuthorsShotCounts() {
		s, err := AuthorsShots(name, k)
		if err != nil {
			continue
		}
		for _, n := range s.Normal {
			seenN[n] = true
		}
		for _, n := range s.Abnormal {
			seenA[n] = true
		}
	}
	return slices.Sorted(maps.Keys(seenN)), slices.Sorted(maps.Keys(seenA))
}

// DrawShots picks k normal and k abnormal samples with a seeded draw.
func DrawShots(samples []Sample, k int, seed uint64) (Shots, error) {
	var normal, abnormal []string
	for _, s := range samples {
		if s.Abnormal {
			abnormal = append(abnormal, s.Name())
		} else {
			normal = append(normal, s.Name())
		}
	}
	if k < 1 {
		return Shots{}, fmt.Errorf("shots must be at least 1, got %d", k)
	}
	if len(normal) < k || len(abnormal) < k {
		return Shots{}, fmt.Errorf("%d shots asked, the split has %d normal and %d abnormal images", k, len(normal), len(abnormal))
	}
	r := rand.New(rand.NewPCG(seed, 0x6d6164636c6970))
	pick := func(names []string) []string {
		idx := r.Perm(len(names))[:k]
		out := make([]string, k)
		for i, j := range idx {
			out[i] = names[j]
		}
		return out
	}
	return Shots{Normal: pick(normal), Abnormal: pick(abnormal)}, nil
}

// Select returns the samples named by the shots (normal first), and the
// other samples of the split.
func (s Shots) Select(samples []Sample) (shots, rest []Sample, err error) {
	type key struct {
		abnormal bool
		name     string
	}
	byKey := make(map[key]Sample, len(samples))
	for _, smp := range samples {
		byKey[key{smp.Abnormal, smp.Name()}] = smp
	}
	picked := map[key]bool{}
	for _, list := range []struct {
		names    []string
		abnormal bool
		class    string
	}{{s.Normal, false, "good"}, {s.Abnormal, true, "Ungood"}} {
		for _, n := range list.names {
			k := key{list.abnormal, n}
			smp, ok := byKey[k]
			if !ok {
				return nil, nil, fmt.Errorf("shot %s is not among the %s images of the split", n, list.class)
			}
			if picked[k] {
				return nil, nil, fmt.Errorf("shot %s is listed twice among the %s shots", n, list.class)
			}
			shots = append(shots, smp)
			picked[k] = true
		}
	}
	for _, smp := range samples {
		if !picked[key{smp.Abnormal, smp.Name()}] {
			rest = append(rest, smp)
		}
	}
	return shots, rest, nil
}
