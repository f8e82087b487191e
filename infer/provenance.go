package infer

import (
	"fmt"

	"madclip/checkpoint"
	"madclip/internal/jsonpath"
	"madclip/model"
	"madclip/weights"
)

// Provenance says which model made a result and how, so that a report or a
// prediction can be traced and trusted later.
type Provenance struct {
	Version          string        `json:"madclip_version"`
	Checkpoint       jsonpath.Path `json:"checkpoint,omitempty"` // empty when the file was not kept (bench without --work)
	CheckpointSHA256 string        `json:"checkpoint_sha256"`
	// WrittenBy is the madclip that wrote the checkpoint (absent before 0.3.0).
	WrittenBy string `json:"checkpoint_written_by,omitempty"`
	Backbone  string `json:"backbone"` // in words
	// The backbone for scripts: a random-weights preset, or the weights'
	// digest (weights.Digest).
	BackbonePreset string `json:"backbone_preset,omitempty"`
	WeightsDigest  string `json:"weights_digest,omitempty"`
	// WeightsFile is the weights file loaded (absolute): the recorded one,
	// or one with the same digest found in its place.
	WeightsFile jsonpath.Path `json:"weights_file,omitempty"`
	Dataset     string        `json:"dataset"` // the one trained on
	Shots       int           `json:"shots"`
	ShotsFile   jsonpath.Path `json:"shots_file,omitempty"`
	Seed        *uint64       `json:"seed,omitempty"`   // absent for an imported model: its seed is not known
	Epochs      int           `json:"epochs,omitempty"` // absent for an imported model
	// SelectedEpoch is the epoch kept by --select-on-valid (absent: the
	// last), with its image AUROC on the held-out valid images and, for a
	// model trained with masks, its pixel AUROC there.
	SelectedEpoch   int      `json:"selected_epoch,omitempty"`
	ValidAUROC      *float64 `json:"valid_auroc,omitempty"`
	ValidPixelAUROC *float64 `json:"valid_pixel_auroc,omitempty"`
	ImageSize       int      `json:"image_size"`
	// Model is what the model was built with: tapped layers, the
	// reference code's departures from CLIP, the ablations.
	Model model.Options `json:"model"`
	// Training holds the optimiser and data settings (absent for an
	// imported model).
	Training        *checkpoint.Training `json:"training,omitempty"`
	Threshold       float64              `json:"threshold"`
	ThresholdOrigin string               `json:"threshold_origin"`
	// The checkpoint's calibration on held-out valid images: its Youden
	// threshold and what it was chosen on (absent when uncalibrated).
	ThresholdYouden float64                 `json:"threshold_youden,omitempty"`
	Calibration     *checkpoint.Calibration `json:"calibration,omitempty"`
}

// NewProvenance describes the predictor loaded from the checkpoint at path,
// labelling at threshold (origin says where that comes from); version is
// madclip's.
func NewProvenance(p *Predictor, path, version string, threshold float64, origin string) (Provenance, error) {
	sum, err := weights.FileSHA256(path)
	if err != nil {
		return Provenance{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	m := p.Meta
	bb := m.Backbone
	if p.WeightsFile != "" {
		bb.File = jsonpath.Path(absPath(p.WeightsFile))
	}
	pv := Provenance{
		Version: version, Checkpoint: jsonpath.Path(absPath(path)), CheckpointSHA256: sum, WrittenBy: m.WrittenBy, Backbone: bb.String(),
		BackbonePreset: bb.Preset, WeightsDigest: bb.Digest, WeightsFile: bb.File,
		Dataset: m.Dataset, Shots: m.Shots, ShotsFile: jsonpath.Path(m.ShotsFile),
		Epochs: m.Epochs, SelectedEpoch: m.SelectedEpoch, ValidAUROC: m.ValidAUROC, ValidPixelAUROC: m.ValidPixelAUROC, ImageSize: m.Model.ImageSize, Model: m.Model, Training: m.Training,
		Threshold: threshold, ThresholdOrigin: origin, ThresholdYouden: m.ThresholdYouden, Calibration: m.Calibration,
	}
	if m.Imported == nil {
		pv.Seed = &m.Seed
	}
	return pv, nil
}
