package infer

import (
	"fmt"
	"path/filepath"

	"madclip/internal/jsonpath"
	"madclip/weights"
)

// Provenance says which model made a result and how, so that a report or a
// prediction can be traced and trusted later.
type Provenance struct {
	Version          string        `json:"madclip_version"`
	Checkpoint       jsonpath.Path `json:"checkpoint,omitempty"` // empty when the file was not kept (bench without --work)
	CheckpointSHA256 string        `json:"checkpoint_sha256"`
	Backbone         string        `json:"backbone"` // in words
	// The backbone for scripts: a random-weights preset, or the weights'
	// digest (weights.Digest).
	BackbonePreset  string        `json:"backbone_preset,omitempty"`
	WeightsDigest   string        `json:"weights_digest,omitempty"`
	Dataset         string        `json:"dataset"` // the one trained on
	Shots           int           `json:"shots"`
	ShotsFile       jsonpath.Path `json:"shots_file,omitempty"`
	Seed            *uint64       `json:"seed,omitempty"`   // absent for an imported model: its seed is not known
	Epochs          int           `json:"epochs,omitempty"` // absent for an imported model
	ImageSize       int           `json:"image_size"`
	Threshold       float64       `json:"threshold"`
	ThresholdOrigin string        `json:"threshold_origin"`
}

// NewProvenance describes the predictor loaded from the checkpoint at path,
// labelling at threshold (origin says where that comes from); version is
// madclip's.
func NewProvenance(p *Predictor, path, version string, threshold float64, origin string) (Provenance, error) {
	sum, err := weights.FileSHA256(path)
	if err != nil {
		return Provenance{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	m := p.Meta
	pv := Provenance{
		Version: version, Checkpoint: jsonpath.Path(abs), CheckpointSHA256: sum, Backbone: m.Backbone.String(),
		BackbonePreset: m.Backbone.Preset, WeightsDigest: m.Backbone.Digest,
		Dataset: m.Dataset, Shots: m.Shots, ShotsFile: jsonpath.Path(m.ShotsFile),
		Epochs: m.Epochs, ImageSize: m.Model.ImageSize,
		Threshold: threshold, ThresholdOrigin: origin,
	}
	if m.Imported == nil {
		pv.Seed = &m.Seed
	}
	return pv, nil
}
