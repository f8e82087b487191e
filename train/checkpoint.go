package train

import (
	"encoding/json"
	"fmt"
	"strings"

	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/weights"
)

// Version is written into checkpoints.
const Version = "0.1.0"

// Backbone identifies the frozen CLIP a checkpoint was trained on: a preset
// with a seed (random weights, recreated exactly) or a weights file by its
// SHA-256.
type Backbone struct {
	Preset string      `json:"preset,omitempty"`
	Seed   uint64      `json:"seed,omitempty"`
	SHA256 string      `json:"weights_sha256,omitempty"`
	File   string      `json:"weights_file,omitempty"`
	Config clip.Config `json:"clip_config"`
}

// Meta is everything a checkpoint says about how it was made.
type Meta struct {
	Version  string        `json:"version"`
	Model    model.Options `json:"model"`
	Backbone Backbone      `json:"backbone"`
	Dataset  string        `json:"dataset"`
	// Masks is whether training had masks (and so trained the segmentation
	// head): scores are then the anomaly map's maximum.
	Masks      bool   `json:"masks"`
	Shots      int    `json:"shots"`
	ShotsFile  string `json:"shots_file,omitempty"`
	ShotsIndex int    `json:"shots_index,omitempty"`
	Seed       uint64 `json:"seed"`
	Epochs     int    `json:"epochs"`
	// Threshold is a score threshold chosen on held-out valid images (0 when
	// none was chosen).
	Threshold float64 `json:"threshold,omitempty"`
	// Model selection on held-out valid images (--select-on-valid): the
	// epoch kept (1-based; 0 means the last) and its image AUROC there.
	SelectedEpoch int     `json:"selected_epoch,omitempty"`
	ValidAUROC    float64 `json:"valid_auroc,omitempty"`
	// Imported says where a converted checkpoint came from (madclip import);
	// nil for models trained here.
	Imported *Imported `json:"imported,omitempty"`
	// Resume state; set only in checkpoints written before the end.
	Epoch int   `json:"epoch,omitempty"` // epochs completed
	Step  int   `json:"step,omitempty"`  // steps completed in the next epoch
	Steps int64 `json:"optimizer_steps,omitempty"`
}

// Imported identifies the file a checkpoint was converted from.
type Imported struct {
	Format string `json:"format"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// Partial reports whether training had not finished when it was written.
func (m Meta) Partial() bool { return m.Epoch < m.Epochs }

const metaKey = "madclip"

// SaveCheckpoint writes the trained tensors (and, for a partial checkpoint,
// Adam's moments as "optim.m.NAME"/"optim.v.NAME") with meta, atomically.
func SaveCheckpoint(path string, m *model.MadCLIP, opt *torch.Adam, meta Meta) error {
	return torch.Scoped(func(s *torch.Scope) error {
		tensors := m.Params().Map()
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
		return saveCheckpoint(path, m, opt, meta, tensors)
	})
}

// TextFeaturesKey names the trained class embeddings [2, E] (t_n, t_ab) in
// a finished checkpoint.
const TextFeaturesKey = "text_features"

func saveCheckpoint(path string, m *model.MadCLIP, opt *torch.Adam, meta Meta, tensors map[string]*torch.Tensor) error {
	if opt != nil && meta.Partial() {
		meta.Steps = opt.Steps()
		for i, name := range m.Params().Names() {
			mom, v, err := opt.State(i)
			if err != nil {
				return err
			}
			if mom != nil {
				tensors["optim.m."+name] = mom
				tensors["optim.v."+name] = v
			}
		}
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	return torch.SaveSafetensors(path, tensors, map[string]string{metaKey: string(js), "format": "pt"})
}

// Checkpoint is a loaded checkpoint: its tensors (on the device asked for)
// and its metadata.
type Checkpoint struct {
	Path    string
	Meta    Meta
	Tensors map[string]*torch.Tensor
}

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint.
func LoadCheckpoint(path string, dev torch.Device) (*Checkpoint, error) {
	ts, md, err := torch.LoadSafetensors(path, dev, torch.Float32)
	if err != nil {
		return nil, err
	}
	js, ok := md[metaKey]
	var meta Meta
	if ok {
		err = json.Unmarshal([]byte(js), &meta)
	}
	if !ok || err != nil {
		for _, t := range ts {
			t.Free()
		}
		return nil, fmt.Errorf("%s: not a madclip checkpoint (no configuration in its metadata)", path)
	}
	return &Checkpoint{Path: path, Meta: meta, Tensors: ts}, nil
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
func (c *Checkpoint) OpenBackbone(weightsPath string, dev torch.Device) (*clip.Model, error) {
	b := c.Meta.Backbone
	opts := c.Meta.Model.CLIPOptions(dev)
	if b.Preset != "" {
		cfg, ok := clip.Presets[b.Preset]
		if !ok {
			return nil, fmt.Errorf("%s: unknown backbone preset %q", c.Path, b.Preset)
		}
		return clip.New(cfg, opts, b.Seed)
	}
	if weightsPath == "" {
		weightsPath = b.File
	}
	sum, err := weights.FileSHA256(weightsPath)
	if err != nil {
		return nil, fmt.Errorf("%s was trained on CLIP weights %s: %w", c.Path, b.File, err)
	}
	if sum != b.SHA256 {
		return nil, fmt.Errorf("%s was trained on other CLIP weights (SHA-256 %s…), not %s (%s…)", c.Path, b.SHA256[:12], weightsPath, sum[:12])
	}
	m, err := clip.Load(weightsPath, opts)
	if err != nil {
		return nil, err
	}
	if m.Config != b.Config {
		m.Free()
		return nil, fmt.Errorf("%s: the weights' architecture differs from the checkpoint's", c.Path)
	}
	return m, nil
}

// Model rebuilds MadCLIP over backbone from the checkpoint's tensors (which
// it takes). Optimizer moments and the text features, if any, stay in
// c.Tensors.
func (c *Checkpoint) Model(backbone *clip.Model, tk *bpe.Tokenizer) (*model.MadCLIP, error) {
	params := map[string]*torch.Tensor{}
	for k, t := range c.Tensors {
		if !strings.HasPrefix(k, "optim.") && k != TextFeaturesKey {
			params[k] = t
			delete(c.Tensors, k)
		}
	}
	if err := upgradePrompts(params); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	m, err := model.Build(backbone, tk, c.Meta.Model, clip.NewLoadBuilder(params))
	if err != nil {
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
			for _, pos := range model.Positions {
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
			if len(row) != len(model.Positions) {
				return fmt.Errorf("phrase %d of the %s prompts lacks a position", i, class)
			}
			phrases = append(phrases, torch.Stack(0, row...))
		}
		params["prompts."+class] = torch.Stack(0, phrases...)
	}
	return nil
}
