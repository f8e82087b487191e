// Package train fits MadCLIP's adapters and prompts to a few labelled
// scans: the losses, the feature cache, the training loop, validation-based
// selection and calibration (checkpoints are package checkpoint's).
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
	l := labels.CastAs(s).MulScalar(2).SubScalar(1).Unsqueeze(1) // [B, 1]
	sn := s.Select(-1, 0).Mul(l).Neg().LogSigmoid().MeanDims(torch.DropDims, 1)
	sab := s.Select(-1, 1).Mul(l).LogSigmoid().MeanDims(torch.DropDims, 1)
	return sn.Add(sab).Mean().Neg()
}

// SoftmaxDetectionLoss is the ablation's loss as the authors' code runs it
// (loss_type=softmax) on one layer's scores [B, P, 2]: per patch the
// softmax over (S_n, S_ab); n and a the mean over patches of the normal and
// abnormal probabilities; BCEWithLogits(1 − n, y) + BCEWithLogits(a, y),
// each averaged over the batch. (Their code feeds probabilities to the
// with-logits loss; we reproduce it as it is.)
func SoftmaxDetectionLoss(s, labels *torch.Tensor) *torch.Tensor {
	p := s.Softmax(-1) // [B, P, 2]
	y := labels.CastAs(s)
	n := p.Select(-1, 0).MeanDims(torch.DropDims, 1)
	a := p.Select(-1, 1).MeanDims(torch.DropDims, 1)
	return bceWithLogits(n.RSubScalar(1), y).Add(bceWithLogits(a, y))
}

// bceWithLogits is PyTorch's BCEWithLogitsLoss (mean reduction) of logits x
// against targets y: mean(softplus(x) − x·y) = mean(x·(1 − y) − logsigmoid(x)).
func bceWithLogits(x, y *torch.Tensor) *torch.Tensor {
	return x.Mul(y.RSubScalar(1)).Sub(x.LogSigmoid()).Mean()
}

// FocalLoss is the focal loss (γ = 2, no α) of upsampled segmentation
// probabilities p [B, 2, H, W] against masks [B, H, W] in {0, 1}: the
// one-hot target clamped to [1e-5, 1−1e-5], pt = Σ onehot·p + 1e-5, and
// −(1−pt)²·log pt averaged over all pixels.
func FocalLoss(p, masks *torch.Tensor) *torch.Tensor {
	m := masks.CastAs(p)
	onehot := torch.Stack(1, m.RSubScalar(1), m).Clamp(1e-5, 1-1e-5)
	pt := onehot.Mul(p).SumDims(torch.DropDims, 1).AddScalar(1e-5)
	return pt.RSubScalar(1).Square().Mul(pt.Log()).Mean().Neg()
}

// DiceLoss is 1 − (2Σp·m + 1)/(Σp + Σm + 1) per image on the abnormal
// probability p [B, H, W], averaged over the batch (normal images too).
func DiceLoss(p, masks *torch.Tensor) *torch.Tensor {
	m := masks.CastAs(p)
	inter := p.Mul(m).SumDims(torch.DropDims, 1, 2)
	den := p.SumDims(torch.DropDims, 1, 2).Add(m.SumDims(torch.DropDims, 1, 2)).AddScalar(1)
	return inter.MulScalar(2).AddScalar(1).Div(den).RSubScalar(1).Mean()
}

// LossOptions choose the loss terms.
type LossOptions struct {
	Softmax bool // the ablation's softmax detection loss (SoftmaxDetectionLoss)
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
		// One scope per layer: its terms' temporaries go as soon as the
		// term is summed (autograd keeps what backward needs).
		add(torch.Local1(func() *torch.Tensor {
			var l *torch.Tensor
			if o.Softmax {
				l = SoftmaxDetectionLoss(det[i], labels)
			} else {
				l = DetectionLoss(det[i], labels)
			}
			if masks != nil {
				p := model.SegLogits(seg[i], grid, o.Size).Softmax(1)
				l = l.Add(FocalLoss(p, masks)).Add(DiceLoss(p.Select(1, 1), masks))
			}
			return l
		}))
	}
	return total
}
