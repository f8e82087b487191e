package infer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"

	"gonum.org/v1/plot/plotter"

	"madclip/dataset"
	"madclip/imaging"
	"madclip/internal/jsonpath"
	"madclip/metrics"
)

// Scored is one evaluated test image, with the keys of predict --json and
// its true class.
type Scored struct {
	Path     jsonpath.Path `json:"path"`
	Score    float64       `json:"score"`
	Label    string        `json:"label"` // at the evaluation's threshold
	DetScore float64       `json:"det_score"`
	Abnormal bool          `json:"abnormal"` // the truth
	MaskPath string        `json:"-"`        // its ground-truth mask, if any
}

// AtThreshold is how the labels at one threshold fare.
type AtThreshold struct {
	Threshold   float64 `json:"threshold"`
	Origin      string  `json:"origin"`
	Sensitivity float64 `json:"sensitivity"`
	Specificity float64 `json:"specificity"`
	Precision   float64 `json:"precision"`
	F1          float64 `json:"f1"`
	TP          int     `json:"tp"`
	FP          int     `json:"fp"`
	TN          int     `json:"tn"`
	FN          int     `json:"fn"`
	// Dice and IoU of the predicted region (map ≥ threshold) against the
	// masks, pooled over all test pixels (normal images included); only
	// for datasets with masks.
	PixelDice *float64 `json:"pixel_dice,omitempty"`
	PixelIoU  *float64 `json:"pixel_iou,omitempty"`
	// The mean over the test images whose mask marks something of each
	// image's Dice and IoU, as many segmentation papers report them.
	PixelDiceMean *float64 `json:"pixel_dice_mean,omitempty"`
	PixelIoUMean  *float64 `json:"pixel_iou_mean,omitempty"`
}

func atThreshold(c metrics.Confusion, th float64, origin string) AtThreshold {
	return AtThreshold{Threshold: th, Origin: origin, Sensitivity: c.Sensitivity(), Specificity: c.Specificity(),
		Precision: c.Precision(), F1: c.F1(), TP: c.TP, FP: c.FP, TN: c.TN, FN: c.FN}
}

// ScoreKind names what a model's image score is: the anomaly map's maximum
// for a model trained with masks, else the detection head's score.
func ScoreKind(masks bool) string {
	if masks {
		return "anomaly map"
	}
	return "detection head"
}

// DefaultBatch is the images per forward pass of prediction unless told.
const DefaultBatch = 16

// AUPROLimit is the false positive rate up to which AUPRO integrates, as
// anomalib and MVTec AD report it.
const AUPROLimit = 0.3

// Metrics are a test split's threshold-free metrics and how the labels at
// one threshold fare, under the names every report (eval, bench) gives them.
type Metrics struct {
	ImageAUROC float64 `json:"image_auroc"`
	ImageAP    float64 `json:"image_ap"`
	ImageF1Max float64 `json:"image_f1_max"`
	// DetImageAUROC is the image AUROC of the detection head's score; for
	// models trained without masks it is ImageAUROC.
	DetImageAUROC float64  `json:"det_image_auroc"`
	PixelAUROC    *float64 `json:"pixel_auroc,omitempty"`
	PixelAP       *float64 `json:"pixel_ap,omitempty"`
	// PixelAUPRO is the area under the per-region overlap curve up to FPR
	// 0.3, normalised (datasets with masks).
	PixelAUPRO *float64 `json:"pixel_aupro,omitempty"`
	// At is sensitivity, specificity, precision and F1 of the labels at the
	// checkpoint's threshold (or the one given).
	At AtThreshold `json:"at_threshold"`
}

// Evaluation is the result of scoring a test split.
type Evaluation struct {
	Dataset string `json:"dataset"` // the test split's; the provenance names the one trained on
	// Data is the benchmark root the test split was read from, absolute;
	// the images' paths are absolute too, so that a report names files
	// that can be found from anywhere.
	Data   jsonpath.Path `json:"data"`
	Images int           `json:"images"`
	// ScoredBy says which score the image metrics rate: "anomaly map" (its
	// maximum; models trained with masks) or "detection head".
	ScoredBy string `json:"scored_by"`
	Metrics
	// F1MaxThreshold is the test split's own F1-max threshold (for
	// comparison; labels use At.Threshold).
	F1MaxThreshold float64 `json:"f1_max_threshold"`
	// NoPixelMetrics says why a split with masks has no pixel metrics
	// (every mask empty: no anomalous pixel to find); "" otherwise.
	NoPixelMetrics string      `json:"no_pixel_metrics,omitempty"`
	Provenance     *Provenance `json:"provenance,omitempty"`
	Scores         []Scored    `json:"scores"`

	imageScores []float32
	imageLabels []bool
	imageRank   *metrics.Ranking // of imageScores, shared by the metrics and the plots
	// The pixel-level curves, drawn from the ranking the pixel metrics
	// share (the pixels themselves are not kept), and the pixels' outcomes
	// at At.Threshold.
	pixROC, pixPR Curve
	pixAt         metrics.Confusion
}

// Plots are the evaluation's curves: the image-level ROC and
// precision-recall curves, and for datasets with masks the pixel-level ones,
// by file name.
func (e *Evaluation) Plots() map[string]Curve {
	img := metrics.Confusion{TP: e.At.TP, FP: e.At.FP, TN: e.At.TN, FN: e.At.FN}
	label := fmt.Sprintf("threshold %.3g", e.At.Threshold)
	names := PlotNames()
	p := map[string]Curve{}
	if r := e.imageRank; r != nil {
		p[names[0]] = ROCPlot(e.Dataset+" image-level ROC", r, e.ImageAUROC).markAt(img, label)
		p[names[1]] = PRPlot(e.Dataset+" image-level precision-recall", r, e.ImageAP).markAt(img, label)
	}
	if e.PixelAUROC != nil {
		p[names[2]] = e.pixROC.markAt(e.pixAt, label)
		p[names[3]] = e.pixPR.markAt(e.pixAt, label)
	}
	return p
}

// markAt marks on c the operating point of the outcomes at the labels'
// threshold: (FPR, TPR) on a ROC curve, (recall, precision) on a
// precision-recall one, where they are defined.
func (c Curve) markAt(at metrics.Confusion, label string) Curve {
	pt := plotter.XY{X: 1 - at.Specificity(), Y: at.Sensitivity()}
	if c.Kind == PRCurve {
		if at.TP+at.FP == 0 {
			return c // no image called anomalous: precision is undefined
		}
		pt = plotter.XY{X: at.Sensitivity(), Y: at.Precision()}
	}
	if at.TP+at.FN == 0 || at.TN+at.FP == 0 {
		return c
	}
	c.At, c.AtLabel = &pt, label
	return c
}

// PlotNames are the file names of the curves Plots may draw, so that a
// command can check them before it starts.
func PlotNames() [4]string {
	return [4]string{"roc_image.png", "pr_image.png", "roc_pixel.png", "pr_pixel.png"}
}

// Evaluate scores every image of the dataset's test split and computes the
// image metrics, and when the split has masks the pixel AUROC, AP and AUPRO
// and the predicted regions' Dice and IoU. each, when not nil, sees every
// image with its prediction (for heatmaps). It runs on the compute thread.
// Of o, all but Masks and KeepOriginal apply (they follow the split and
// each). Labels are given at threshold, whose origin the report names.
func (p *Predictor) Evaluate(root, name string, o StreamOptions, threshold float64, origin string, each func(dataset.Decoded, Result) error) (*Evaluation, error) {
	split, err := dataset.ReadSplit(root, name, "test")
	if err != nil {
		return nil, err
	}
	if n := split.SkipNote(); n != "" && o.Note != nil {
		o.Note(n)
	}
	e := &Evaluation{Dataset: name, Data: jsonpath.Path(absPath(root)), Images: len(split.Samples), ScoredBy: ScoreKind(p.HasMasks)}
	var pix, detScores []float32
	var pixLabels []bool
	o.Masks, o.KeepOriginal = split.HasMasks, each != nil
	err = p.Stream(split.Samples, o, func(d dataset.Decoded, r Result) error {
		e.imageScores = append(e.imageScores, float32(r.Score))
		e.imageLabels = append(e.imageLabels, d.Sample.Abnormal)
		e.Scores = append(e.Scores, Scored{Path: jsonpath.Path(absPath(d.Sample.Path)), Abnormal: d.Sample.Abnormal, Score: r.Score, DetScore: r.DetScore, Label: Label(r.Score, threshold), MaskPath: d.Sample.MaskPath})
		detScores = append(detScores, float32(r.DetScore))
		if split.HasMasks {
			pix = append(pix, r.Map...)
			for _, m := range d.Image.Mask {
				pixLabels = append(pixLabels, m > 0.5)
			}
		}
		if each != nil {
			return each(d, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if e.imageRank, err = metrics.Rank(e.imageScores, e.imageLabels); err != nil {
		return nil, fmt.Errorf("test split of %s: %w", name, err)
	}
	e.ImageAUROC, e.ImageAP = e.imageRank.AUROC(), e.imageRank.AveragePrecision()
	var detErr, f1Err, atErr error
	e.DetImageAUROC, detErr = metrics.AUROC(detScores, e.imageLabels)
	f1, th, f1Err := metrics.F1Max(e.imageScores, e.imageLabels)
	e.ImageF1Max, e.F1MaxThreshold = f1, float64(th)
	c, atErr := metrics.At(e.imageScores, e.imageLabels, threshold)
	if err := errors.Join(detErr, f1Err, atErr); err != nil {
		return nil, fmt.Errorf("test split of %s: %w", name, err)
	}
	e.At = atThreshold(c, threshold, origin)
	if split.HasMasks && !slices.Contains(pixLabels, true) {
		e.NoPixelMetrics = "every test mask is empty, so there is no anomalous pixel to find and the pixel metrics are undefined (masks stored as 0/1 rather than 0/255 read as empty)"
	} else if split.HasMasks {
		if err := e.pixelMetrics(pix, pixLabels, p.Size, threshold, o.Stage); err != nil {
			return nil, fmt.Errorf("pixel metrics of %s: %w", name, err)
		}
	}
	return e, nil
}

// pixelMetrics computes, from the test split's maps and masks (size×size
// each, one after another), the pixel AUROC, AP, AUPRO and curves from one
// ranking of the pixels, and the predicted regions' Dice and IoU at
// threshold. stage, when set, is told before the ranking, which takes
// seconds for millions of pixels.
func (e *Evaluation) pixelMetrics(pix []float32, labels []bool, size int, threshold float64, stage func(string)) error {
	px, err := metrics.At(pix, labels, threshold)
	if err != nil {
		return err
	}
	dice, iou := px.Dice(), px.IoU()
	e.At.PixelDice, e.At.PixelIoU = &dice, &iou
	e.pixAt = px
	n := size * size
	maps, masks := make([][]float32, 0, len(pix)/n), make([][]bool, 0, len(pix)/n)
	for lo := 0; lo < len(pix); lo += n {
		maps, masks = append(maps, pix[lo:lo+n]), append(masks, labels[lo:lo+n])
	}
	if d, u, ok := meanOverlap(maps, masks, threshold); ok {
		e.At.PixelDiceMean, e.At.PixelIoUMean = &d, &u
	}
	if stage != nil {
		stage(fmt.Sprintf("pixel AUROC, AP and AUPRO over %d pixels", len(pix)))
	}
	r, err := metrics.Rank(pix, labels)
	if err != nil {
		return err
	}
	auc, ap := r.AUROC(), r.AveragePrecision()
	aupro, err := r.AUPRO(masks, size, size, AUPROLimit)
	if err != nil {
		return err
	}
	e.PixelAUROC, e.PixelAP, e.PixelAUPRO = &auc, &ap, &aupro
	e.pixROC = ROCPlot(e.Dataset+" pixel-level ROC", r, auc)
	e.pixPR = PRPlot(e.Dataset+" pixel-level precision-recall", r, ap)
	return nil
}

// StreamOptions say how Stream batches and what it decodes besides the
// model's input.
type StreamOptions struct {
	Batch        int  // images per forward pass; DefaultBatch when zero
	Masks        bool // decode ground-truth masks (Decoded.Image.Mask)
	KeepOriginal bool // keep each full-size image (Decoded.Orig), for heatmaps
	// Skip, when set, is told of each image that cannot be read, and the
	// stream carries on with the rest. Without it such an image ends the
	// stream, after the images before it have been scored and handed to fn.
	Skip func(bad dataset.Decoded)
	// Limits bounds what is decoded (the zero value is the default).
	Limits imaging.Limits
	// Progress, when set, is told how many of how many images are done
	// (skipped ones included): once with none done before the first image
	// is scored, then after each image.
	Progress func(done, total int)
	// Stage, when set, is told what Evaluate computes after the images
	// are scored, when that takes a while (the pixel metrics).
	Stage func(what string)
	// Note, when set, is told by Evaluate what the user should know
	// whatever the progress shown: what the split's folders hold that is
	// not read (dataset.Split.SkipNote).
	Note func(what string)
	// Context, when set, stops the stream once it is done (Ctrl-C): no
	// image is scored or handed to fn after that, and Stream returns its
	// error. An image already handed over finishes first.
	Context context.Context
}

// stopped is the error of the stream's context, if it is done.
func (o StreamOptions) stopped() error {
	if o.Context == nil {
		return nil
	}
	return o.Context.Err()
}

// KeptOriginalBytes bounds the full-size originals Stream holds for
// heatmaps, both decoded ahead of the model and waiting in a batch: about
// five 4000×4000 scans each, far more than a batch of 512² ones.
const KeptOriginalBytes = 256 << 20

// LargeOriginal is the size of an original (about 2400² pixels) beyond
// which garbage is collected once it is drawn: drawing one leaves several
// times its size, which would otherwise let the heap double before the
// next is drawn. Stream does so after fn returns; a caller that draws
// later (predict's pool of writers) does so itself.
const LargeOriginal = 16 << 20

// Stream decodes items on worker goroutines and scores them in batches,
// calling fn for each image in order. It runs on the compute thread.
func (p *Predictor) Stream(samples []dataset.Sample, o StreamOptions, fn func(dataset.Decoded, Result) error) error {
	batch := o.Batch
	if batch < 1 {
		batch = DefaultBatch
	}
	// Decoding runs up to two batches ahead of the model; with full-size
	// originals kept (which may be 4000² scans) only a batch and one image
	// per core, within a byte budget, both ahead and in the batch: a batch
	// of large originals is scored early rather than held whole.
	ahead := 2 * batch
	if o.KeepOriginal {
		ahead = batch + runtime.NumCPU()
	}
	ch, stop := dataset.Decode(samples, p.Size, dataset.DecodeOptions{Masks: o.Masks, KeepOriginal: o.KeepOriginal, Ahead: ahead, Limits: o.Limits,
		OriginalBytes: KeptOriginalBytes})
	defer stop()
	done := 0
	if o.Progress != nil {
		o.Progress(0, len(samples))
	}
	tell := func() {
		done++
		if o.Progress != nil {
			o.Progress(done, len(samples))
		}
	}
	var pending []dataset.Decoded
	var pendingBytes int64 // of the pending originals
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := o.stopped(); err != nil {
			return err
		}
		px := make([][]float32, len(pending))
		for i, d := range pending {
			px[i] = d.Image.Pixels
		}
		res, err := p.Predict(px)
		if nf := (*NonFiniteError)(nil); errors.As(err, &nf) {
			nf.Image = pending[nf.Index].Sample.Path
		}
		if err != nil {
			return err
		}
		for i, d := range pending {
			if err := o.stopped(); err != nil {
				return err
			}
			if err := fn(d, res[i]); err != nil {
				return err
			}
			tell()
			pending[i] = dataset.Decoded{} // its original can go
			if d.Orig != nil && len(d.Orig.Pix) >= LargeOriginal {
				// Drawing a large original leaves garbage of several
				// times its size; collected now, it does not let the heap
				// double before the next one is drawn.
				runtime.GC()
			}
		}
		pending, pendingBytes = pending[:0], 0
		return nil
	}
	for d := range ch {
		if err := o.stopped(); err != nil {
			return err
		}
		if d.Err != nil {
			if o.Skip != nil {
				o.Skip(d)
				tell()
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			return d.Err
		}
		pending = append(pending, d)
		if d.Orig != nil {
			pendingBytes += int64(len(d.Orig.Pix))
		}
		if len(pending) == batch || pendingBytes >= KeptOriginalBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// Label names the class of a score at threshold: "anomalous" at or above.
func Label(score, threshold float64) string {
	if score >= threshold {
		return "anomalous"
	}
	return "normal"
}

// absPath is p made absolute, or p when that fails.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// meanOverlap is the mean Dice and IoU at threshold over the images whose
// mask marks something (false when none does).
func meanOverlap(maps [][]float32, masks [][]bool, threshold float64) (dice, iou float64, ok bool) {
	n := 0
	for i, m := range masks {
		if !slices.Contains(m, true) {
			continue
		}
		c, err := metrics.At(maps[i], m, threshold)
		if err != nil { // a map and its mask of one size: never
			continue
		}
		dice, iou, n = dice+c.Dice(), iou+c.IoU(), n+1
	}
	if n == 0 {
		return 0, 0, false
	}
	return dice / float64(n), iou / float64(n), true
}
