// Package authors converts between madclip checkpoints and the checkpoints
// the MadCLIP authors publish (ckpt/{Obj}.pth from their train.py: a
// torch.save of a dict of state dicts), both ways, so that their trained
// models run here and ours run in their test.py.
//
// Their layout: "normal_det_adapters" and "abnormal_det_adapters" hold, per
// tapped layer l, "{l}.fc1.0.weight" [W, W], "{l}.fc2.0.weight" [E, W] (the
// detection head) and "{l}.fc3.0.weight" [E, W] (the segmentation head);
// "prompt_maker_normal" and "prompt_maker_abnormal" hold the context vectors
// "prompt_learner.ctx.{class}_{end|front|middle}" [7 phrases, 8, D] and a
// copy of the frozen text encoder's weights ("text_encoder." + CLIP's
// names, without the token embedding). A model with hand-crafted prompts
// (their text_mood=fix) has "text_features_fix" [E, 2] instead.
package authors

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"madclip/authorship"
	"madclip/model"
)

const (
	normalAdapters   = authorship.AuthorsAdapters
	abnormalAdapters = "abnormal_det_adapters"
	fixedText        = "text_features_fix"
	textEncoder      = "text_encoder."
	ctxPrefix        = "prompt_learner.ctx."
)

var (
	adapterGroups = [2]string{normalAdapters, abnormalAdapters}
	promptGroups  = [2]string{"prompt_maker_normal", "prompt_maker_abnormal"}
	classNames    = [2]string{"normal", "abnormal"}
)

// Their adapter heads by our names: fc1 is the shared projection, fc2 the
// detection head, fc3 the segmentation head.
var headNames = []struct{ ours, theirs string }{{"fc1", "fc1.0"}, {"det", "fc2.0"}, {"seg", "fc3.0"}}

// adapterName is our name of tapped layer li's head in branch b.
func adapterName(b, li int, head string) string {
	return fmt.Sprintf("adapters.%s.%d.%s.weight", classNames[b], li, head)
}

// theirAdapterName is their name of tapped layer li's head in branch b,
// as their file holds it (group and state-dict key).
func theirAdapterName(b, li int, head string) string {
	return fmt.Sprintf("%s.%d.%s.weight", adapterGroups[b], li, head)
}

// promptName is our name of class c's contexts [phrases, positions, 8, width].
func promptName(c int) string { return "prompts." + classNames[c] }

// ctxName is their name of class c's contexts at pos (inside its prompt maker).
func ctxName(c int, pos model.Position) string {
	return fmt.Sprintf("%s%s_%s", ctxPrefix, classNames[c], pos)
}

// adapterLayers returns how many tapped layers the file's adapters cover
// (indices 0..n-1, each with fc1), or an error naming what is missing.
func adapterLayers(keys map[string]bool) (int, error) {
	seen := map[int]bool{}
	for k := range keys {
		rest, ok := strings.CutPrefix(k, normalAdapters+".")
		if !ok {
			continue
		}
		idx, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(idx); err == nil && n >= 0 {
			seen[n] = true
		}
	}
	if len(seen) == 0 {
		return 0, fmt.Errorf("no %s: not a MadCLIP checkpoint of the authors' code", normalAdapters)
	}
	var idx []int
	for n := range seen {
		idx = append(idx, n)
	}
	sort.Ints(idx)
	for i, n := range idx {
		if n != i {
			return 0, fmt.Errorf("%s has layers %v, want 0..%d", normalAdapters, idx, len(idx)-1)
		}
	}
	for b := range 2 {
		for li := range idx {
			for _, h := range headNames {
				k := theirAdapterName(b, li, h.theirs)
				if !keys[k] {
					what := ""
					if h.ours == "seg" {
						what = " (their segmentation head; a common-head model cannot be imported)"
					}
					return 0, fmt.Errorf("no %s%s", k, what)
				}
			}
		}
	}
	return len(idx), nil
}

// unexpectedKeys refuses a tensor that their train.py does not save: in
// the adapters' or prompt makers' state dicts one their modules do not
// have (a bias, a fourth head, a layer beyond the others, another class's
// contexts), or one beside them: the model would silently differ from the
// file. The text encoder's copy is checked
// against the CLIP weights on its own.
func unexpectedKeys(keys map[string]bool, layers int) error {
	known := map[string]bool{}
	for b := range 2 {
		for li := range layers {
			for _, h := range headNames {
				known[theirAdapterName(b, li, h.theirs)] = true
			}
		}
		for _, pos := range model.Positions() {
			known[promptGroups[b]+"."+ctxName(b, pos)] = true
		}
	}
	var odd []string
	for k := range keys {
		group, rest, _ := strings.Cut(k, ".")
		switch group {
		case normalAdapters, abnormalAdapters, promptGroups[0], promptGroups[1]:
			if !known[k] && !strings.HasPrefix(rest, textEncoder) {
				odd = append(odd, k)
			}
		default:
			if k != fixedText {
				odd = append(odd, k)
			}
		}
	}
	if len(odd) > 0 {
		sort.Strings(odd)
		return fmt.Errorf("unexpected tensor %s (their modules have no such parameter; %d in all)", odd[0], len(odd))
	}
	return nil
}

// closeEnough reports whether two weight tensors' values agree: the
// authors' copy of the text encoder is the fp32 image of the same (often
// fp16) weights, so they agree to rounding unless the weights differ.
func closeEnough(a, b []float64) (float64, bool) {
	worst := 0.0
	for i := range a {
		d := math.Abs(a[i] - b[i])
		worst = math.Max(worst, d)
		if !(d <= 1e-4+1e-3*math.Abs(b[i])) {
			return d, false
		}
	}
	return worst, true
}
