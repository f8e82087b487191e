package dataset

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
)

// Shots are the names of the few-shot images: k normal and k abnormal.
type Shots struct {
	Normal, Abnormal []string
}

// ReadShotsFile reads the authors' few-shot lists: lines "n-I: a.png b.png"
// (normal) and "a-I: ..." (abnormal), I the draw's index; index picks one.
func ReadShotsFile(path string, index int) (Shots, error) {
	f, err := os.Open(path)
	if err != nil {
		return Shots{}, err
	}
	defer f.Close()
	var s Shots
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		key, files, ok := strings.Cut(text, ":")
		if !ok {
			return Shots{}, fmt.Errorf("%s:%d: want \"n-0: files...\" or \"a-0: files...\"", path, line)
		}
		var kind string
		var idx int
		if _, err := fmt.Sscanf(strings.TrimSpace(key), "%1s-%d", &kind, &idx); err != nil || (kind != "n" && kind != "a") {
			return Shots{}, fmt.Errorf("%s:%d: unknown key %q (want n-I or a-I)", path, line, key)
		}
		if idx != index {
			continue
		}
		names := strings.Fields(files)
		if kind == "n" {
			s.Normal = append(s.Normal, names...)
		} else {
			s.Abnormal = append(s.Abnormal, names...)
		}
	}
	if err := sc.Err(); err != nil {
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
