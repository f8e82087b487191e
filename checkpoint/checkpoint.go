// Package checkpoint owns a trained MadCLIP model's file: its description
// (Meta, with the backbone it needs), saving and loading it, and opening
// the frozen CLIP it was trained on.
package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"madclip/authorship"
	"madclip/dataset"
	"madclip/internal/jsonpath"
	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/model/param"
	"madclip/torch"
	"madclip/torch/safetensors"
	"madclip/weights"
)

// Version is written into checkpoints: the version of their format.
const Version = "0.3.0"

// ToolVersion is madclip's own version (a development build of the
// format's), which every checkpoint records as the build that wrote it.
const ToolVersion = Version + "-dev"

// snakeKeysSince is the first version whose model options and CLIP
// configuration have snake_case keys like the rest of the description;
// earlier ones wrote Go's field names (ImageSize), which parseMeta
// translates.
var snakeKeysSince = []int{0, 3, 0}

// Backbone identifies the frozen CLIP a checkpoint was trained on: a preset
// with a seed (random weights, recreated exactly) or weights by their
// digest (weights.Digest, over the tensors; checkpoints from before 0.2.1
// give the file's SHA-256 instead).
type Backbone struct {
	Preset string `json:"preset,omitempty"`
	Seed   uint64 `json:"seed,omitempty"`
	// Digest is weights.Digest of the weights: their tensors, whatever file
	// holds them. SHA256 (the file's hash) identifies weights in
	// checkpoints from before version 0.2.1.
	Digest string        `json:"weights_digest,omitempty"`
	SHA256 string        `json:"weights_sha256,omitempty"`
	File   jsonpath.Path `json:"weights_file,omitempty"` // absolute, where it was
	Config clip.Config   `json:"clip_config"`
}

// Meta is everything a checkpoint says about how it was made.
type Meta struct {
	Version string `json:"version"`
	// WrittenBy is the madclip that wrote the file ("madclip 0.3.0-dev");
	// absent in checkpoints from before 0.3.0.
	WrittenBy string        `json:"written_by,omitempty"`
	Model     model.Options `json:"model"`
	Backbone  Backbone      `json:"backbone"`
	Dataset   string        `json:"dataset"`
	// Masks is whether training had masks (and so trained the segmentation
	// head): scores are then the anomaly map's maximum.
	Masks      bool          `json:"masks"`
	Shots      int           `json:"shots"`
	ShotsFile  jsonpath.Path `json:"shots_file,omitempty"`
	ShotsIndex int           `json:"shots_index,omitempty"`
	// ShotImages names the shots trained on (file names in valid/), from
	// whichever list or draw chose them; nil for an imported model, whose
	// shots are not known.
	ShotImages *ShotImages `json:"shot_images,omitempty"`
	Seed       uint64      `json:"seed"`
	Epochs     int         `json:"epochs"`
	// Threshold is the label threshold chosen on held-out valid images
	// (F1-max, at the midpoint of its gap between held-out scores), 0 when
	// there were none; ThresholdYouden is the Youden point there;
	// Calibration says on what they were chosen.
	Threshold       float64      `json:"threshold,omitempty"`
	ThresholdYouden float64      `json:"threshold_youden,omitempty"`
	Calibration     *Calibration `json:"calibration,omitempty"`
	// Model selection on held-out valid images (--select-on-valid): the
	// epoch kept (1-based; 0 means the last), its image AUROC there, and
	// when selection ranked the masks' pixels too (a model trained with
	// masks) its pixel AUROC there: selection maximises their sum. Both
	// are nil without a selected epoch (the pixel AUROC also in
	// checkpoints from before it was recorded), and can be 0.
	SelectedEpoch   int      `json:"selected_epoch,omitempty"`
	ValidAUROC      *float64 `json:"valid_auroc,omitempty"`
	ValidPixelAUROC *float64 `json:"valid_pixel_auroc,omitempty"`
	// SelectedOn identifies the held-out valid images selection ranks the
	// epochs on, so that a resumed run compares its epochs on the same
	// ones (nil without selection, and in checkpoints written before it
	// was recorded).
	SelectedOn *HeldOut `json:"selected_on,omitempty"`
	// Imported says where a converted checkpoint came from (madclip import);
	// nil for models trained here.
	Imported *Imported `json:"imported,omitempty"`
	// Training holds the run's other settings, so that --resume continues
	// the run as it was started (nil in checkpoints from before 0.2.1).
	Training *Training `json:"training,omitempty"`
	// Resume state; set only in checkpoints written before the end.
	Epoch int   `json:"epoch,omitempty"` // epochs completed
	Step  int   `json:"step,omitempty"`  // steps completed in the next epoch
	Steps int64 `json:"optimizer_steps,omitempty"`
	// EpochLossSum is the sum of the losses of EpochLossSteps of those
	// Step steps (all of them unless a checkpoint from before 0.2.2 was
	// resumed in this epoch), so that a resumed run reports the unfinished
	// epoch's mean over every step whose loss it knows.
	EpochLossSum   float64 `json:"epoch_loss_sum,omitempty"`
	EpochLossSteps int     `json:"epoch_loss_steps,omitempty"`
	// Elapsed is the wall time of the run so far in seconds, preparation
	// included, over every start of a resumed run.
	Elapsed float64 `json:"elapsed_seconds,omitempty"`
}

// ShotImages are the file names of the normal and abnormal shots.
type ShotImages struct {
	Normal   []string `json:"normal"`
	Abnormal []string `json:"abnormal"`
	// SHA256 fingerprints each shot's files (image and mask; normal shots
	// first, see dataset.Digests), so that a resumed run knows it trains on
	// the same data.
	SHA256 []string `json:"sha256,omitempty"`
}

// HeldOut identifies a set of held-out valid images: how many of each
// class, and a SHA-256 over their names (relative to the split), labels
// and files' SHA-256s (see train's heldOutPrint).
type HeldOut struct {
	Normal      int    `json:"normal"`
	Abnormal    int    `json:"abnormal"`
	NamesSHA256 string `json:"names_sha256"`
}

// Calibration describes the held-out valid images (those not among the
// shots) the thresholds were chosen on, and the image AUROC there.
type Calibration struct {
	Normal   int     `json:"normal"`
	Abnormal int     `json:"abnormal"`
	AUROC    float64 `json:"auroc"`
}

// ThresholdOrigin says where Threshold comes from, for reports.
func (m Meta) ThresholdOrigin() string {
	switch {
	case m.Threshold == 0 && m.Imported != nil:
		return "uncalibrated: imported (" + m.Imported.Format + "), which carries no threshold, so 0.5"
	case m.Threshold == 0:
		return "uncalibrated: the checkpoint chose no threshold (no held-out valid images of both classes), so 0.5"
	case m.Imported != nil:
		return "given when imported (madclip import --threshold)"
	case m.Calibration == nil:
		return "chosen on held-out valid images in training"
	}
	return fmt.Sprintf("F1-max on %d normal and %d abnormal held-out valid images", m.Calibration.Normal, m.Calibration.Abnormal)
}

// Training is how a model was trained, besides what Meta says elsewhere.
type Training struct {
	Data          jsonpath.Path `json:"data"` // the benchmark root, absolute
	Batch         int           `json:"batch"`
	LR            float64       `json:"lr"`
	Beta1         float64       `json:"beta1"`
	Beta2         float64       `json:"beta2"`
	SoftmaxLoss   bool          `json:"softmax_loss,omitempty"`
	SelectOnValid bool          `json:"select_on_valid,omitempty"`
	DrawShots     bool          `json:"draw_shots,omitempty"`
}

// Imported identifies the file a checkpoint was converted from: its format,
// where it was (absolute; earlier builds recorded only its name) and its
// SHA-256.
type Imported struct {
	Format string        `json:"format"`
	File   jsonpath.Path `json:"file"`
	SHA256 string        `json:"sha256"`
}

// Partial reports whether training had not finished when it was written.
func (m Meta) Partial() bool { return m.Epoch < m.Epochs }

// StepsPerEpoch is the optimisation steps of one epoch of the run: its
// augmented set (dataset.Variants images of each of the 2·Shots shots) in
// batches; 0 when the batch is not recorded (before 0.2.1).
func (m Meta) StepsPerEpoch() int {
	if m.Training == nil || m.Training.Batch < 1 {
		return 0
	}
	n := 2 * m.Shots * dataset.Variants
	return (n + m.Training.Batch - 1) / m.Training.Batch
}

// CheckResumeState refuses a partial checkpoint whose position does not
// fit its run of steps steps per epoch: a run stopped at (epoch, step) has
// taken exactly that many Adam steps; anything else was edited by hand.
func (m Meta) CheckResumeState(steps int) error {
	if m.Step >= steps || m.Steps != int64(m.Epoch)*int64(steps)+int64(m.Step) {
		return fmt.Errorf("its resume state (epoch %d, step %d, %d optimiser steps) does not fit the run's %d steps per epoch; the checkpoint was altered", m.Epoch+1, m.Step, m.Steps, steps)
	}
	return nil
}

// Resumable says why the partial checkpoint at path, described by m,
// cannot be continued by madclip train --resume, from its header alone:
// a resume state that does not fit its run, or Adam's moments missing
// after steps were taken. (Its data and weights are checked when it
// resumes.)
func Resumable(path string, m Meta) error {
	if steps := m.StepsPerEpoch(); steps > 0 {
		if err := m.CheckResumeState(steps); err != nil {
			return err
		}
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	names := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		names[i] = t.Name
	}
	if err := CheckOptimState(names, m.Steps, nil); err != nil {
		return err
	}
	if m.SelectedEpoch > 0 && !slices.ContainsFunc(f.Tensors, func(t safetensors.Tensor) bool { return strings.HasPrefix(t.Name, SelectedPrefix) }) {
		return fmt.Errorf("it names epoch %d as the best so far but lacks its parameters", m.SelectedEpoch)
	}
	return nil
}

// CheckOptimState refuses the optimiser state of a partial checkpoint
// holding the tensors named, saved after steps Adam steps, that cannot
// continue its run exactly: none at all past the first step, one moment of
// a pair ("optim.m.NAME" without "optim.v.NAME" or the reverse), or, when
// params is not nil, moments of a name not among the model's parameters. A
// parameter may have none (no gradient reached it yet). Any of these means
// the file was altered.
func CheckOptimState(tensors []string, steps int64, params []string) error {
	have := make(map[string]bool, len(tensors))
	for _, name := range tensors {
		have[name] = true
	}
	moments := false
	for _, name := range tensors {
		param, other := "", ""
		if rest, ok := strings.CutPrefix(name, "optim.m."); ok {
			param, other = rest, "optim.v."+rest
		} else if rest, ok := strings.CutPrefix(name, "optim.v."); ok {
			param, other = rest, "optim.m."+rest
		} else {
			continue
		}
		moments = true
		if params != nil && !slices.Contains(params, param) {
			return fmt.Errorf("it holds optimiser state %s for no parameter of the model: edited or damaged", name)
		}
		if !have[other] {
			return fmt.Errorf("its optimiser state has %s without %s", name, other)
		}
	}
	if steps > 0 && !moments {
		return fmt.Errorf("it was saved after %d optimiser steps without the optimiser's state, so it cannot continue exactly", steps)
	}
	return nil
}

// StoppedAt says where a partial checkpoint's run stopped, as training
// says it when interrupted: "epoch 2 of 6, after its step 1" (the epoch
// counted from 1, and the steps done in it), or "the start of epoch 2 of 6".
func (m Meta) StoppedAt() string {
	if m.Step == 0 {
		return fmt.Sprintf("the start of epoch %d of %d", m.Epoch+1, m.Epochs)
	}
	return fmt.Sprintf("epoch %d of %d, after its step %d", m.Epoch+1, m.Epochs, m.Step)
}

// clipTensor is a tensor every CLIP weights file holds and no checkpoint
// does.
const clipTensor = "visual.conv1.weight"

// metaKey holds the checkpoint's Meta as JSON in the safetensors metadata.
const metaKey = "madclip"

// Save writes the trained tensors (and, for a partial checkpoint,
// Adam's moments as "optim.m.NAME"/"optim.v.NAME") with meta, atomically.
func Save(path string, m *model.MadCLIP, opt *torch.Adam, meta Meta) error {
	return save(path, m, opt, meta, nil)
}

// TextFeaturesKey names the trained class embeddings [2, E] (t_n, t_ab) in
// a finished checkpoint.
const TextFeaturesKey = "text_features"

// SelectedPrefix starts the names under which a partial checkpoint of a run
// selecting its epoch on held-out images keeps the best epoch's parameters
// so far ("selected." + the parameter's name), so that a resumed run keeps
// the epoch an uninterrupted one would.
const SelectedPrefix = "selected."

// SavePartial is Save for a run stopped before its end, with the best
// epoch's parameters so far (by parameter name; nil without selection).
func SavePartial(path string, m *model.MadCLIP, opt *torch.Adam, meta Meta, selected map[string]*torch.Tensor) error {
	return save(path, m, opt, meta, selected)
}

func save(path string, m *model.MadCLIP, opt *torch.Adam, meta Meta, selected map[string]*torch.Tensor) error {
	// A model Load would refuse (gone non-finite or far out of range: a
	// diverged or corrupted run) is never written: it would replace a good
	// checkpoint, perhaps the one resumed, with one no command can use.
	if err := checkValues(m.Params().Map()); err != nil {
		return fmt.Errorf("save %s: %w; nothing was written", path, err)
	}
	meta.WrittenBy = "madclip " + ToolVersion
	return torch.Scoped(func(s *torch.Scope) error {
		tensors := m.Params().Map()
		for name, t := range selected {
			tensors[SelectedPrefix+name] = t
		}
		if !meta.Partial() {
			// t_n and t_ab are fixed once training ends: prediction reads
			// them instead of running the text tower at every start.
			var text *torch.Tensor
			if err := torch.NoGrad(func() error {
				text = m.TextFeatures().ToDType(torch.Float32)
				return text.Err()
			}); err != nil {
				return err
			}
			tensors[TextFeaturesKey] = text
		}
		if opt != nil && meta.Partial() {
			meta.Steps = opt.Steps()
			for i, name := range m.Params().Names() {
				mom, v, err := opt.State(i)
				if err != nil {
					return fmt.Errorf("save %s: optimiser state of %s: %w", path, name, err)
				}
				if mom != nil {
					tensors["optim.m."+name] = mom
					tensors["optim.v."+name] = v
				}
			}
		}
		js, err := json.Marshal(meta)
		if err != nil {
			return fmt.Errorf("save %s: %w", path, err)
		}
		return torch.SaveSafetensors(path, tensors, map[string]string{metaKey: string(js), "format": "pt"})
	})
}

// Checkpoint is a loaded checkpoint: its tensors (on the device asked for)
// and its metadata.
type Checkpoint struct {
	Path    string
	Meta    Meta
	Tensors map[string]*torch.Tensor
}

// Load reads a checkpoint written by Save. Its description is checked
// before anything is built from it, and every tensor must be finite.
func Load(path string, dev torch.Device) (*Checkpoint, error) {
	ts, md, err := torch.LoadSafetensors(path, dev, torch.Float32)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Path: path, Tensors: ts}
	_, clipWeights := ts[clipTensor]
	if c.Meta, err = parseMeta(path, md, clipWeights); err == nil && len(ts) == 0 {
		err = noTensors(path)
	}
	if err == nil {
		err = finishedWithoutState(path, c.Meta, ts)
	}
	if err == nil {
		err = CheckParameters(path, ts)
	}
	if err == nil {
		err = checkTextFeatures(path, ts[TextFeaturesKey], int64(c.Meta.Backbone.Config.EmbedDim))
	}
	if err != nil {
		c.Free()
		return nil, err
	}
	return c, nil
}

// finishedWithoutState refuses a checkpoint that says training finished
// but holds what only an unfinished run saves (Adam's moments, the best
// epoch's parameters kept for a resumed selection): its epoch count was
// edited, and it would be taken for a trained model.
func finishedWithoutState(path string, m Meta, ts map[string]*torch.Tensor) error {
	if m.Partial() {
		return nil
	}
	for k := range ts {
		if strings.HasPrefix(k, "optim.") || strings.HasPrefix(k, SelectedPrefix) {
			return fmt.Errorf("%s: it says training finished (%d of %d epochs) but holds %s, which only an unfinished run saves: edited or damaged", path, m.Epoch, m.Epochs, k)
		}
	}
	return nil
}

// checkTextFeatures refuses stored class embeddings ([2, embed]: t_n,
// t_ab) that are not as training writes them: of another shape, not of unit
// length, or one class's the same as the other's, which would score every
// image alike (nil: none stored).
func checkTextFeatures(path string, tf *torch.Tensor, embed int64) error {
	if tf == nil {
		return nil
	}
	damaged := fmt.Sprintf("%s: %s", path, TextFeaturesKey)
	if sh := tf.Shape(); len(sh) != 2 || sh[0] != 2 || sh[1] != embed {
		return fmt.Errorf("%s has shape %v, not [2 %d] (t_n, t_ab): the checkpoint is damaged or edited", damaged, sh, embed)
	}
	var rows []float32
	err := torch.NoGrad(func() error {
		var err error
		rows, err = tf.Float32s()
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", damaged, err)
	}
	tn, tab := rows[:embed], rows[embed:]
	var dot float64
	for i, x := range [][]float32{tn, tab} {
		var sq float64
		for j, v := range x {
			sq += float64(v) * float64(v)
			if i == 0 {
				dot += float64(v) * float64(tab[j])
			}
		}
		if n := math.Sqrt(sq); math.Abs(n-1) > 1e-3 {
			return fmt.Errorf("%s row %d has length %.4g, but training stores unit vectors: the checkpoint is damaged or edited", damaged, i, n)
		}
	}
	if dot > 1-1e-6 {
		return fmt.Errorf("%s holds the same vector for normal and abnormal (cosine %.6f): every image would score alike; the checkpoint is damaged or edited", damaged, min(dot, 1))
	}
	return nil
}

// ReadMeta reads only a checkpoint's description.
func ReadMeta(path string) (Meta, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return Meta{}, err
	}
	defer f.Close()
	clipWeights := slices.ContainsFunc(f.Tensors, func(t safetensors.Tensor) bool { return t.Name == clipTensor })
	m, err := parseMeta(path, f.Metadata, clipWeights)
	if err == nil && len(f.Tensors) == 0 {
		return m, noTensors(path)
	}
	return m, err
}

// noTensors is the error for a checkpoint's description without the model.
func noTensors(path string) error {
	return fmt.Errorf("%s: a checkpoint's description, but no tensors: the trained model is missing", path)
}

// parseMeta decodes and validates the description in a checkpoint's
// metadata: it is trusted by nothing until it passes.
//
// clipWeights says the file holds CLIP's tensors, whoever converted it:
// without a description, it is named for what it is.
func parseMeta(path string, md map[string]string, clipWeights bool) (Meta, error) {
	var meta Meta
	js, ok := md[metaKey]
	if !ok {
		switch {
		case clipWeights:
			return meta, fmt.Errorf("%s: CLIP weights, not a madclip checkpoint (the trained model madclip train writes): weights go with --weights", path)
		case authorship.MetadataKind(md) != authorship.None:
			return meta, fmt.Errorf("%s: written by madclip, but it holds neither a checkpoint's configuration nor CLIP's tensors (its metadata edited?)", path)
		}
		return meta, fmt.Errorf("%s: not a madclip checkpoint (no configuration in its metadata)", path)
	}
	raw := []byte(js)
	if d := jsonDepth(raw); d > maxMetaDepth {
		return meta, fmt.Errorf("%s: its configuration nests %d levels deep, where madclip's nests at most %d (edited by hand?)", path, d, maxMetaDepth)
	}
	if v, ok := versionOf(raw); ok && slices.Compare(v, snakeKeysSince) < 0 {
		raw = snakeKeys(raw)
	}
	if key, ok := repeatedKey(raw); ok {
		return meta, fmt.Errorf("%s: its configuration gives %s twice (edited by hand?): madclip writes each setting once", path, key)
	}
	if key, want, ok := miscasedKey(raw, reflect.TypeFor[Meta]()); ok {
		return meta, fmt.Errorf("%s: its configuration names %s, which madclip writes %s (edited by hand?)", path, key, want)
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return meta, fmt.Errorf("%s: its configuration is a JSON %s, not the object madclip writes", path, te.Value)
			}
			return meta, fmt.Errorf("%s: its configuration's %s is a JSON %s, not the %s madclip writes there", path, te.Field, te.Value, jsonKind(te.Type))
		}
		return meta, fmt.Errorf("%s: its configuration is not valid JSON: %w", path, err)
	}
	if err := meta.validate(); err != nil {
		return meta, fmt.Errorf("%s: %w", path, err)
	}
	return meta, nil
}

// maxMetaDepth bounds the nesting of a checkpoint's description (madclip's
// own nests 3 levels): the checks that walk it stay cheap on any input.
const maxMetaDepth = 16

// jsonDepth is the deepest nesting of objects and arrays in the JSON text
// js (brackets inside strings do not count).
func jsonDepth(js []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range js {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// repeatedKey finds a key given twice in one object of the JSON text js,
// in any letter case (Go's decoder matches keys so and keeps the last
// silently), and names it by where it is ("model.layers"). Invalid JSON
// has none: the decoder reports it.
func repeatedKey(js []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(js))
	key, found, err := repeatedIn(dec, "")
	return key, found && err == nil
}

// repeatedIn reads one JSON value from dec, at the place named at, and
// reports the first key an object in it repeats.
func repeatedIn(dec *json.Decoder, at string) (string, bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", false, err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return "", false, err
			}
			name, _ := k.(string)
			where := name
			if at != "" {
				where = at + "." + name
			}
			fold := strings.ToLower(name)
			if seen[fold] {
				return where, true, nil
			}
			seen[fold] = true
			if key, found, err := repeatedIn(dec, where); found || err != nil {
				return key, found, err
			}
		}
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if key, found, err := repeatedIn(dec, fmt.Sprintf("%s[%d]", at, i)); found || err != nil {
				return key, found, err
			}
		}
	default:
		return "", false, nil
	}
	_, err = dec.Token() // the closing delimiter
	return "", false, err
}

// miscasedKey finds a key of the JSON text js that names a field of t (a
// struct) in another letter case than madclip writes it ("THRESHOLD"):
// Go's decoder would take it, Python's json would not see it, so the two
// would read different models. It returns the key, where it is, and the
// name madclip writes. Keys of no field are left to the decoder.
func miscasedKey(js []byte, t reflect.Type) (key, want string, found bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return "", "", false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(js, &obj) != nil {
		var arr []json.RawMessage
		if json.Unmarshal(js, &arr) == nil {
			for _, v := range arr {
				if k, w, ok := miscasedKey(v, t); ok {
					return k, w, true
				}
			}
		}
		return "", "", false
	}
	fields := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f
		}
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if f, ok := fields[k]; ok {
			if sub, w, found := miscasedKey(obj[k], f.Type); found {
				return k + "." + sub, w, true
			}
			continue
		}
		for name := range fields {
			if strings.EqualFold(name, k) {
				return k, name, true
			}
		}
	}
	return "", "", false
}

// jsonKind names the JSON value that decodes into t, for messages about
// a configuration (not Go's type names).
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "object"
}

// versionOf reads the version of a description, if it has a valid one.
func versionOf(js []byte) ([]int, bool) {
	var head struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(js, &head) != nil {
		return nil, false
	}
	return parseVersion(head.Version)
}

// snakeKeys rewrites a description from before snakeKeysSince in the
// current form: the keys of "model" and of "backbone"'s "clip_config" from
// Go's field names (ImageSize, QuickGELU) to snake_case (image_size,
// quick_gelu). What it cannot read it returns as it was, for Unmarshal to
// report.
func snakeKeys(js []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(js, &top) != nil {
		return js
	}
	top["model"] = snakeObject(top["model"])
	var backbone map[string]json.RawMessage
	if b, ok := top["backbone"]; ok && json.Unmarshal(b, &backbone) == nil {
		backbone["clip_config"] = snakeObject(backbone["clip_config"])
		if out, err := json.Marshal(backbone); err == nil {
			top["backbone"] = out
		}
	}
	out, err := json.Marshal(top)
	if err != nil {
		return js
	}
	return out
}

// snakeObject renames the keys of a JSON object to snake_case; anything
// else is returned as it is.
func snakeObject(obj json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if obj == nil || json.Unmarshal(obj, &m) != nil || m == nil {
		return obj
	}
	renamed := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		renamed[snakeCase(k)] = v
	}
	out, err := json.Marshal(renamed)
	if err != nil {
		return obj
	}
	return out
}

// snakeCase turns a Go field name into snake_case, keeping an acronym
// whole: ImageSize → image_size, QuickGELU → quick_gelu, EmbedDim →
// embed_dim.
func snakeCase(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 {
			prevLower := rs[i-1] >= 'a' && rs[i-1] <= 'z'
			nextLower := i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z'
			prevUpper := rs[i-1] >= 'A' && rs[i-1] <= 'Z'
			if prevLower || (prevUpper && nextLower) {
				b.WriteByte('_')
			}
		}
		if upper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// validate checks the backbone description: one backbone, named by a
// known preset or by weights with their digest, of a valid configuration.
func (b Backbone) validate() error {
	switch {
	case b.Preset != "" && (b.File != "" || b.Digest != "" || b.SHA256 != ""):
		return fmt.Errorf("its configuration names two backbones: the %q preset and the weights %s", b.Preset, b.File)
	case b.Preset != "":
		cfg, ok := clip.Preset(b.Preset)
		if !ok {
			return fmt.Errorf("unknown backbone preset %q in its configuration", b.Preset)
		}
		if cfg != b.Config {
			return fmt.Errorf("its backbone configuration differs from the %q preset's", b.Preset)
		}
	case b.File == "" && b.Digest == "" && b.SHA256 == "":
		return fmt.Errorf("its configuration names no backbone (a preset, or a weights file and its digest)")
	case b.File == "":
		return fmt.Errorf("its configuration gives the weights' digest but not their file")
	case b.Digest == "" && b.SHA256 == "":
		return fmt.Errorf("its configuration names the weights %s but not their digest", b.File)
	case b.Digest != "" && !isSHA256(b.Digest):
		return fmt.Errorf("its weights digest %q (%d characters) is not a SHA-256 in lowercase hexadecimal", short(b.Digest), len(b.Digest))
	case b.Digest == "" && !isSHA256(b.SHA256):
		return fmt.Errorf("its weights file hash %q (%d characters) is not a SHA-256 in lowercase hexadecimal", short(b.SHA256), len(b.SHA256))
	}
	if err := b.Config.Validate(); err != nil {
		return fmt.Errorf("its backbone configuration: %w", err)
	}
	return nil
}

// validate checks what later steps act on: the backbone description, the
// sizes, the counts.
func (m Meta) validate() error {
	if err := checkVersion(m.Version); err != nil {
		return err
	}
	if err := m.Backbone.validate(); err != nil {
		return err
	}
	b := m.Backbone
	if o := m.Model; o.ImageSize < 1 || o.ImageSize > model.MaxImageSize {
		return fmt.Errorf("its model's image size %d is outside 1 to %d, the sizes madclip trains at", o.ImageSize, model.MaxImageSize)
	}
	if len(m.Model.Layers) == 0 {
		return fmt.Errorf("its model taps no layer")
	}
	if err := m.Model.CheckLayers(b.Config.VisionLayers); err != nil {
		return fmt.Errorf("its model configuration: %w", err)
	}
	if m.Epochs < 0 || m.Epoch < 0 || m.Step < 0 || m.Shots < 0 || m.Steps < 0 {
		return fmt.Errorf("its configuration has negative counts")
	}
	if m.Step > maxSteps || m.Steps > maxSteps {
		return fmt.Errorf("its resume state is %d steps into an epoch after %d optimiser steps: more than any run takes", m.Step, m.Steps)
	}
	if !m.Partial() && m.Step != 0 {
		return fmt.Errorf("it says training finished (%d of %d epochs) yet %d steps into the next", m.Epoch, m.Epochs, m.Step)
	}
	if m.Epochs > MaxEpochs || m.Epoch > m.Epochs || m.Shots > MaxShots {
		return fmt.Errorf("its configuration has %d of %d epochs done and %d shots", m.Epoch, m.Epochs, m.Shots)
	}
	if err := m.ShotImages.validate(m.Shots, m.Version); err != nil {
		return err
	}
	if m.ShotsIndex < 0 {
		return fmt.Errorf("its shots list index %d is negative", m.ShotsIndex)
	}
	if im := m.Imported; im != nil && !isSHA256(im.SHA256) {
		return fmt.Errorf("the SHA-256 of the file it was imported from, %q, is not a SHA-256 in lowercase hexadecimal", short(im.SHA256))
	}
	if err := dataset.CheckName(m.Dataset); err != nil {
		return fmt.Errorf("its %w", err)
	}
	if err := model.CheckObjectText(m.Model.Object); err != nil {
		return fmt.Errorf("its model: %w", err)
	}
	if t := m.Training; t != nil && !(t.LR > 0 && t.LR <= 1 && t.Beta1 >= 0 && t.Beta1 < 1 && t.Beta2 >= 0 && t.Beta2 < 1 && t.Batch >= 1 && t.Batch <= MaxBatch) {
		return fmt.Errorf("its training settings are out of range (batch %d, lr %v, betas %v, %v)", t.Batch, t.LR, t.Beta1, t.Beta2)
	}
	if math.IsNaN(m.EpochLossSum) || m.EpochLossSum < 0 || m.EpochLossSum > maxLoss*float64(m.EpochLossSteps) || m.EpochLossSteps < 0 || m.EpochLossSteps > m.Step ||
		(m.EpochLossSteps == 0 && m.EpochLossSum != 0) {
		return fmt.Errorf("its resume state has a loss sum of %v over %d of %d steps", m.EpochLossSum, m.EpochLossSteps, m.Step)
	}
	if !(m.Elapsed >= 0 && m.Elapsed < 1e9) {
		return fmt.Errorf("its elapsed time %v s is out of range", m.Elapsed)
	}
	for _, th := range []float64{m.Threshold, m.ThresholdYouden} {
		if math.IsNaN(th) || th < 0 || th > 1 {
			return fmt.Errorf("its threshold %v is outside [0, 1]", th)
		}
	}
	if m.SelectedEpoch < 0 || m.SelectedEpoch > m.Epoch {
		return fmt.Errorf("its selected epoch %d is not one of the %d epochs done", m.SelectedEpoch, m.Epoch)
	}
	inUnit := func(p *float64) bool { return p == nil || (*p >= 0 && *p <= 1) }
	if !inUnit(m.ValidAUROC) || (m.ValidAUROC != nil && m.SelectedEpoch == 0) {
		return fmt.Errorf("its valid image AUROC %v belongs to no selected epoch or is outside [0, 1]", *m.ValidAUROC)
	}
	if !inUnit(m.ValidPixelAUROC) || (m.ValidPixelAUROC != nil && (m.SelectedEpoch == 0 || !m.Masks)) {
		return fmt.Errorf("its valid pixel AUROC %v belongs to no selected epoch of a model trained with masks or is outside [0, 1]", *m.ValidPixelAUROC)
	}
	if t := m.Training; t != nil && (m.SelectedEpoch > 0 || m.SelectedOn != nil) && !t.SelectOnValid {
		return fmt.Errorf("it records a selection (epoch %d) but was trained without --select-on-valid", m.SelectedEpoch)
	}
	if h := m.SelectedOn; h != nil && !(h.Normal > 0 && h.Abnormal > 0 && h.Normal <= 1<<30 && h.Abnormal <= 1<<30 && isSHA256(h.NamesSHA256)) {
		return fmt.Errorf("its held-out valid images (%d normal, %d abnormal, names %q) are not a set selection could rank on", h.Normal, h.Abnormal, short(h.NamesSHA256))
	}
	if m.Threshold == 0 && (m.Calibration != nil || m.ThresholdYouden != 0) {
		return fmt.Errorf("it records a calibration but no threshold")
	}
	if m.Partial() && (m.Threshold != 0 || m.Calibration != nil) {
		return fmt.Errorf("it records a threshold though its training did not finish (training chooses one at its end)")
	}
	if c := m.Calibration; c != nil && !(c.Normal > 0 && c.Abnormal > 0 && c.Normal <= 1<<30 && c.Abnormal <= 1<<30 && c.AUROC >= 0 && c.AUROC <= 1) {
		return fmt.Errorf("its calibration (%d normal, %d abnormal images, AUROC %v) is out of range", c.Normal, c.Abnormal, c.AUROC)
	}
	return nil
}

// validate checks the shots a checkpoint names against its count of shots
// per class: that many of each, no file twice, and (from shotHashesSince)
// a SHA-256 of each, which resuming checks the data against.
func (si *ShotImages) validate(shots int, version string) error {
	if si == nil {
		return nil
	}
	if len(si.Normal) != shots || len(si.Abnormal) != shots {
		return fmt.Errorf("it names %d normal and %d abnormal shot images for %d shots", len(si.Normal), len(si.Abnormal), shots)
	}
	for _, names := range [][]string{si.Normal, si.Abnormal} {
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				return fmt.Errorf("it names the shot image %q twice", n)
			}
			seen[n] = true
		}
	}
	if v, ok := parseVersion(version); ok && si.SHA256 == nil && slices.Compare(v, shotHashesSince) >= 0 {
		return fmt.Errorf("its shot images lack the SHA-256s that madclip %s records (edited by hand?)", version)
	}
	if si.SHA256 != nil && (len(si.SHA256) != 2*shots || slices.ContainsFunc(si.SHA256, func(s string) bool { return !isSHA256(s) })) {
		return fmt.Errorf("its shot images' SHA-256s are not %d in lowercase hexadecimal", 2*shots)
	}
	return nil
}

// maxLoss bounds the mean loss a checkpoint's resume state may record: a
// step's loss, summed over the tapped layers' terms, is of the order of 1
// to 100; a recorded mean beyond this was edited.
const maxLoss = 1e6

// Bounds of a run: its epochs (the paper trains 60), shots per class (the
// paper's most is 16) and images per optimisation step (the paper's 16).
const (
	MaxEpochs = 100000
	MaxShots  = 1 << 16
	MaxBatch  = 4096
)

// maxSteps bounds a checkpoint's step counts: above what the largest run
// takes (MaxEpochs epochs of the 2·16·MaxShots augmented images, one per
// step), well inside every integer type that holds them.
const maxSteps = MaxEpochs * 32 * MaxShots

// checkVersion refuses a checkpoint without a version, or from a madclip
// newer than this one, whose format this one may misread.
func checkVersion(v string) error {
	if v == "" {
		return fmt.Errorf("its configuration has no version: not written by madclip")
	}
	theirs, ok1 := parseVersion(v)
	ours, _ := parseVersion(Version)
	if !ok1 {
		return fmt.Errorf("its version %.40q is not a madclip version", v)
	}
	if slices.Compare(theirs, ours) > 0 {
		return fmt.Errorf("it was written by madclip %s, newer than this one (%s): update madclip", v, Version)
	}
	if slices.Compare(theirs, firstVersion) < 0 {
		return fmt.Errorf("its version %s is older than any madclip wrote (the first format was 0.1.0)", v)
	}
	return nil
}

// firstVersion is the first checkpoint format; shotHashesSince the first in
// which every trained checkpoint records its shots' SHA-256s.
var firstVersion, shotHashesSince = []int{0, 1, 0}, []int{0, 3, 0}

// parseVersion splits "0.2.1" into its numbers.
func parseVersion(v string) ([]int, bool) {
	var out []int
	for _, f := range strings.Split(v, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || len(out) == 3 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

// MaxParameter bounds a checkpoint's parameters' magnitude. Trained ones
// are of order 0.1 (Adam at lr 1e-3 moves a weight by at most about 1e-3 a
// step); one beyond 1e6 comes only from a damaged or edited file, and far
// enough beyond makes the model overflow to NaN on every image.
const MaxParameter = 1e6

// CheckParameters refuses tensors not floating point or holding NaN or
// infinity, and parameters beyond MaxParameter: such a model scores
// everything alike, silently. path names the file they come from.
func CheckParameters(path string, ts map[string]*torch.Tensor) error {
	if err := checkValues(ts); err != nil {
		return fmt.Errorf("%s: %w: the checkpoint is damaged or edited", path, err)
	}
	return nil
}

// checkValues is CheckParameters' rule, the first tensor that breaks it
// named: floating-point tensors (madclip saves float32, so integers or
// booleans mean a file edited by hand), finite values, parameters within
// MaxParameter, Adam's first moments (means of gradients) too, its second
// moments not negative.
func checkValues(ts map[string]*torch.Tensor) error {
	for _, n := range slices.Sorted(maps.Keys(ts)) {
		if in, err := ts[n].Info(); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		} else if !in.DType.IsFloat() {
			return fmt.Errorf("%s is stored as %v, not floating point", n, in.DType)
		}
		v, err := ts[n].Float32s()
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		bounded := !strings.HasPrefix(n, "optim.v.") // a mean of squared gradients may be larger
		square := strings.HasPrefix(n, "optim.v.")   // a mean of squared gradients
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%s holds %v", n, x)
			}
			if bounded && math.Abs(float64(x)) > MaxParameter {
				return fmt.Errorf("%s holds %g, far beyond any trained value (at most %g)", n, x, MaxParameter)
			}
			if square && x < 0 {
				return fmt.Errorf("%s holds %g, but Adam's second moment is a mean of squares", n, x)
			}
		}
	}
	return nil
}

// Free releases tensors not handed to a model.
func (c *Checkpoint) Free() {
	for _, t := range c.Tensors {
		t.Free()
	}
	c.Tensors = nil
}

// OpenBackbone builds the frozen CLIP the checkpoint needs: the preset from
// its seed, or the weights file (weights, or the one recorded), which must
// be the one it was trained on.
//
// Without weightsPath the recorded file is used, and when it is not there
// any more, the weights folders and the checkpoint's own folder are
// searched for a file with the recorded digest. It returns the weights
// file it loaded ("" for a preset).
func (c *Checkpoint) OpenBackbone(weightsPath string, dev torch.Device) (*clip.Model, string, error) {
	b := c.Meta.Backbone
	if b.Preset != "" && weightsPath != "" {
		return nil, "", fmt.Errorf("%s was trained on %s, which needs no weights file: leave out --weights %s", c.Path, b, weightsPath)
	}
	src := Source{Preset: b.Preset, Seed: b.Seed, Weights: weightsPath}
	if b.Preset == "" && src.Weights == "" {
		var err error
		if src.Weights, err = c.Meta.WeightsFile(c.Path); err != nil {
			return nil, "", err
		}
	}
	m, got, err := OpenBackbone(src, c.Meta.Model.CLIPOptions(dev))
	if err != nil {
		if b.Preset == "" {
			return nil, "", fmt.Errorf("%s was trained on CLIP weights %s: %w", c.Path, b.File, err)
		}
		return nil, "", fmt.Errorf("%s: %w", c.Path, err)
	}
	if b.Preset == "" {
		same := got.Digest == b.Digest
		theirs, ours := b.Digest, got.Digest
		if b.Digest == "" { // a checkpoint from before digests: the file's hash
			sum, err := weights.FileSHA256(src.Weights)
			if err != nil {
				m.Free()
				return nil, "", err
			}
			same, theirs, ours = sum == b.SHA256, b.SHA256, sum
		}
		if !same {
			m.Free()
			return nil, "", fmt.Errorf("%s was trained on other CLIP weights (%s…), not %s (%s…)", c.Path, short(theirs), src.Weights, short(ours))
		}
	}
	if m.Config != b.Config {
		m.Free()
		return nil, "", fmt.Errorf("%s: the backbone's architecture differs from the checkpoint's", c.Path)
	}
	return m, src.Weights, nil
}

// isSHA256 reports whether s is a SHA-256 in lowercase hexadecimal, as
// checkpoints record them.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// WeightsFile is the CLIP weights file a checkpoint at ckPath with this
// Meta runs on when no --weights is given: the recorded file, or when it
// is not there any more or holds other weights now, a file with the
// recorded digest in the weights folders or the checkpoint's own folder.
// It is "" for a preset.
func (m Meta) WeightsFile(ckPath string) (string, error) {
	b := m.Backbone
	if b.Preset != "" {
		return "", nil
	}
	_, statErr := os.Stat(string(b.File))
	if b.Digest == "" {
		return string(b.File), nil
	}
	if statErr == nil {
		// There, and the same weights; or other ones, when a file with the
		// digest elsewhere is taken instead (else the caller names the
		// difference).
		if d, err := weights.Digest(string(b.File)); err == nil && d == b.Digest {
			return string(b.File), nil
		}
		if found, err := weights.FindDigest(b.Digest, filepath.Dir(ckPath)); err == nil {
			return found, nil
		}
		return string(b.File), nil
	}
	found, err := weights.FindDigest(b.Digest, filepath.Dir(ckPath))
	if err != nil {
		return "", fmt.Errorf("%s was trained on CLIP weights %s (digest %s…), which are not there, nor in %s: give them with --weights",
			ckPath, b.File, short(b.Digest), strings.Join(append(weights.Dirs(), filepath.Dir(ckPath)), ", "))
	}
	return found, nil
}

// short abbreviates a digest for messages (whatever its length).
func short(sum string) string { return sum[:min(12, len(sum))] }

// DefaultBackboneSeed is the seed of a preset's random weights unless one
// is given.
const DefaultBackboneSeed = 1

// Source says where a backbone comes from: a preset recreated from its seed
// (random weights, for tests and demos), or a weights file.
type Source struct {
	Preset  string
	Seed    uint64
	Weights string
}

// OpenBackbone loads the CLIP src names with the options o (device
// included) and describes it for checkpoints.
func OpenBackbone(src Source, o clip.Options) (*clip.Model, Backbone, error) {
	if src.Preset != "" {
		cfg, ok := clip.Preset(src.Preset)
		if !ok {
			return nil, Backbone{}, fmt.Errorf("unknown preset %q (known: %s)", src.Preset, strings.Join(clip.PresetNames(), ", "))
		}
		m, err := clip.New(cfg, o, src.Seed)
		return m, Backbone{Preset: src.Preset, Seed: src.Seed, Config: cfg}, err
	}
	if src.Weights == "" {
		return nil, Backbone{}, fmt.Errorf("no CLIP weights (--weights) and no --preset")
	}
	// Loading validates the file (a safetensors header that matches a CLIP)
	// before its digest is taken.
	m, err := clip.Load(src.Weights, o)
	if err != nil {
		return nil, Backbone{}, err
	}
	digest, err := weights.Digest(src.Weights)
	if err != nil {
		m.Free()
		return nil, Backbone{}, err
	}
	abs, err := filepath.Abs(src.Weights)
	if err != nil {
		abs = src.Weights
	}
	return m, Backbone{Digest: digest, File: jsonpath.Path(abs), Config: m.Config}, nil
}

// String names the backbone for reports and messages.
func (b Backbone) String() string {
	switch {
	case b.Preset != "":
		return fmt.Sprintf("preset %s, seed %d (random weights)", b.Preset, b.Seed)
	case b.Digest != "":
		return fmt.Sprintf("CLIP weights %s (digest %s)", b.File, b.Digest)
	}
	return fmt.Sprintf("CLIP weights %s (file SHA-256 %s)", b.File, b.SHA256)
}

// Same reports whether b and o are the same backbone: the same preset and
// seed, or the same weights (by digest, or by file hash for old
// checkpoints), with one architecture; where the files lie does not matter.
func (b Backbone) Same(o Backbone) bool {
	if b.Preset != o.Preset || b.Config != o.Config {
		return false
	}
	switch {
	case b.Preset != "":
		return b.Seed == o.Seed
	case b.Digest != "" || o.Digest != "":
		return b.Digest == o.Digest
	}
	return b.SHA256 != "" && b.SHA256 == o.SHA256
}

// SharedBackbone is a loaded backbone with its description, shared by many
// runs (the benchmark trains and evaluates many models on one).
type SharedBackbone struct {
	Model *clip.Model
	Info  Backbone
}

// Model rebuilds MadCLIP over backbone from the checkpoint's tensors (which
// it takes). Optimizer moments, the selected epoch's parameters and the
// text features, if any, stay in c.Tensors.
func (c *Checkpoint) Model(backbone *clip.Model, tk *bpe.Tokenizer) (*model.MadCLIP, error) {
	params := map[string]*torch.Tensor{}
	for k, t := range c.Tensors {
		if !strings.HasPrefix(k, "optim.") && !strings.HasPrefix(k, SelectedPrefix) && k != TextFeaturesKey {
			params[k] = t
			delete(c.Tensors, k)
		}
	}
	if err := upgradePrompts(params); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	m, err := model.Build(backbone, tk, c.Meta.Model, param.NewLoadBuilder(params))
	if me := (*param.MismatchError)(nil); errors.As(err, &me) {
		return nil, fmt.Errorf("%s: its trained parameters are not those of the model it describes (damaged or edited): %s", c.Path, me.Detail)
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	return m, nil
}

// upgradePrompts rewrites the context vectors of checkpoints written before
// madclip 0.2 (one [8, D] tensor per class, phrase and position, named
// "prompts.{class}.{phrase}.{position}") as one tensor per class.
func upgradePrompts(params map[string]*torch.Tensor) error {
	for _, class := range []string{"normal", "abnormal"} {
		if _, old := params["prompts."+class+".0.end"]; !old {
			continue
		}
		var phrases []*torch.Tensor
		for i := 0; ; i++ {
			var row []*torch.Tensor
			for _, pos := range model.Positions() {
				name := fmt.Sprintf("prompts.%s.%d.%s", class, i, pos)
				t, ok := params[name]
				if !ok {
					break
				}
				row = append(row, t)
				delete(params, name)
			}
			if len(row) == 0 {
				break
			}
			if len(row) != len(model.Positions()) {
				return fmt.Errorf("phrase %d of the %s prompts lacks a position", i, class)
			}
			phrases = append(phrases, torch.Stack(0, row...))
		}
		params["prompts."+class] = torch.Stack(0, phrases...)
	}
	return nil
}
