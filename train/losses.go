// Package train fits MadCLIP's adapters and prompts to a few labelled
// scans: the losses, the feature cache, the training loop and checkpoints.
package train

import (
	"madclip/model"
	"madclip/torch"
)

// DetectionLoss is the "SigLIP"-style loss on one layer's detection scores
// [B, P, 2] = (S_n, S_ab) for image labels y [B] (1 abnormal): with
// l = 2y − 1, −mean_batch(mean_patches logsigmoid(−l·S_n) +
// mean_patches logsigmoid(l·S_ab)). No temperature, no bias.
func DetectionLoss(s, labels *torch.Tensor) *torch.Tensor {
	l := labels.ToDType(s.DType()).MulScalar(2).SubScalar(1).Unsqueeze(1) // [B, 1]
	sn := s.Select(-1, 0).Mul(l).Neg().LogSigmoid().MeanDims(false, 1)
	sab := s.Select(-1, 1).Mul(l).LogSigmoid().MeanDims(false, 1)
	return sn.Add(sab).Mean().Neg()
}

// SoftmaxDetectionLoss is the ablation's CLIP-style loss: cross-entropy of
// each patch's two logits (S_n, S_ab) against the image label.
func SoftmaxDetectionLoss(s, labels *torch.Tensor) *torch.Tensor {
	logp := s.LogSoftmax(-1)                    // [B, P, 2]
	y := labels.ToDType(s.DType()).Unsqueeze(1) // [B, 1]
	ll := logp.Select(-1, 1).Mul(y).Add(logp.Select(-1, 0).Mul(y.RSubScalar(1)))
	return ll.Mean().Neg()
}

// FocalLoss is the focal loss (γ = 2, no α) of upsampled segmentation
// probabilities p [B, 2, H, W] against masks [B, H, W] in {0, 1}: the
// one-hot target clamped to [1e-5, 1−1e-5], pt = Σ onehot·p + 1e-5, and
// −(1−pt)²·log pt averaged over all pixels.
func FocalLoss(p, masks *torch.Tensor) *torch.Tensor {
	m := masks.ToDType(p.DType())
	onehot := torch.Stack(1, m.RSubScalar(1), m).Clamp(1e-5, 1-1e-5)
	pt := onehot.Mul(p).SumDims(false, 1).AddScalar(1e-5)
	return pt.RSubScalar(1).Square().Mul(pt.Log()).Mean().Neg()
}

// DiceLoss is 1 − (2Σp·m + 1)/(Σp + Σm + 1) per image on the abnormal
// probability p [B, H, W], averaged over the batch (normal images too).
func DiceLoss(p, masks *torch.Tensor) *torch.Tensor {
	m := masks.ToDType(p.DType())
	inter := p.Mul(m).SumDims(false, 1, 2)
	den := p.SumDims(false, 1, 2).Add(m.SumDims(false, 1, 2)).AddScalar(1)
	return inter.MulScalar(2).AddScalar(1).Div(den).RSubScalar(1).Mean()
}

// LossOptions choose the loss terms.
type LossOptions struct {
	Softmax bool // the CLIP-style softmax detection loss (an ablation)
	Size    int  // the input resolution the segmentation maps are compared at
}

// Loss is MadCLIP's training loss over all tapped layers: the detection
// loss, plus focal and Dice on the segmentation maps when masks is not nil.
// grid is the patch grid's side.
func Loss(det, seg []*torch.Tensor, labels, masks *torch.Tensor, grid int, o LossOptions) *torch.Tensor {
	var total *torch.Tensor
	add := func(t *torch.Tensor) {
		if total == nil {
			total = t
		} else {
			total = total.Add(t)
		}
	}
	for i := range det {
		if o.Softmax {
			add(SoftmaxDetectionLoss(det[i], labels))
		} else {
			add(DetectionLoss(det[i], labels))
		}
		if masks != nil {
			p := model.SegLogits(seg[i], grid, o.Size).Softmax(1)
			add(FocalLoss(p, masks))
			add(DiceLoss(p.Select(1, 1), masks))
		}
	}
	return total
}
