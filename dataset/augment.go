package dataset

import (
	"math"

	"madclip/torch"
)

// Variants is the number of images the static augmentation makes of each shot.
const Variants = 16

// The augmentation's parameters, in the order the variants are built
// (docs/design.md, "Training"): rotation angles, affine translation offsets
// in grid_sample's normalised coordinates ([-1, 1] spans the image, so 0.1
// shifts by 5% of the size), and centre zoom factors.
var (
	augmentAngles       = []float64{-math.Pi / 8, -math.Pi / 16, math.Pi / 16, math.Pi / 8}
	augmentTranslations = [][2]float64{{0.1, 0.1}, {-0.1, 0.1}, {-0.1, -0.1}, {0.1, -0.1}}
	augmentZooms        = []float64{1.1, 1.15, 1.2, 1.3}
)

// Augment builds MadCLIP's static 16× training set of one group of shots
// (the abnormal ones, or the normal ones), as the authors' code does, from
// images [N, 3, S, S] and masks [N, 1, S, S] (nil without masks), variant
// by variant, each variant holding the whole group: the originals;
// rotations by −π/8, −π/16, π/16, π/8 and translations by (±0.1, ±0.1) in
// normalised coordinates (bilinear, reflection padding); centre zooms by
// 1.1, 1.15, 1.2, 1.3 (a crop of int(S/z) pixels resized back
// bilinearly); one brightness and contrast jitter with one factor pair for
// the group, drawn from g; horizontal and vertical flips. Masks follow the
// geometry (the jitter keeps them) and are re-thresholded at 0.5.
func Augment(images, masks *torch.Tensor, g *torch.Generator) (*torch.Tensor, *torch.Tensor) {
	var imgs, msks []*torch.Tensor
	add := func(i, m *torch.Tensor) {
		imgs = append(imgs, i)
		if masks != nil {
			msks = append(msks, m)
		}
	}
	add(images, masks)
	for _, a := range augmentAngles {
		c, s := math.Cos(a), math.Sin(a)
		add(affine(images, masks, [6]float64{c, -s, 0, s, c, 0}))
	}
	for _, d := range augmentTranslations {
		add(affine(images, masks, [6]float64{1, 0, d[0], 0, 1, d[1]}))
	}
	for _, z := range augmentZooms {
		add(zoom(images, z), zoomMask(masks, z))
	}
	add(jitter(images, g), masks)
	add(flip(images, 3), flip(masks, 3))
	add(flip(images, 2), flip(masks, 2))
	out := torch.Cat(0, imgs...)
	if masks == nil {
		return out, nil
	}
	return out, torch.Cat(0, msks...)
}

// affine resamples images and masks with one affine map (grid_sample's
// convention: output pixel p samples the input at theta·p).
func affine(images, masks *torch.Tensor, th [6]float64) (*torch.Tensor, *torch.Tensor) {
	in, err := images.Info()
	if err != nil {
		return images, masks
	}
	if len(in.Shape) != 4 {
		err := torch.Failed("augment", "images have shape %v, want [batch, channels, height, width]", in.Shape)
		return err, err
	}
	shape := in.Shape
	n := shape[0]
	theta := torch.FromSlice(th[:], 1, 2, 3).To(in.DType, in.Device).Expand(n, 2, 3)
	grid := torch.AffineGrid(theta, [4]int64{n, shape[1], shape[2], shape[3]}, torch.Sampling{})
	img := torch.GridSample(images, grid, torch.Sampling{Mode: torch.Bilinear, Padding: torch.PadReflection})
	if masks == nil {
		return img, nil
	}
	m := torch.GridSample(masks, grid, torch.Sampling{Mode: torch.Bilinear, Padding: torch.PadReflection})
	return img, binarize(m)
}

func binarize(m *torch.Tensor) *torch.Tensor { return m.GtScalar(0.5).CastAs(m) }

// zoomCrop is the side of the centre crop of a zoom by z: int(size / z),
// truncated as the authors' code does.
func zoomCrop(size int64, z float64) int64 { return int64(float64(size) / z) }

// zoom crops the centre int(S/z) pixels of each side, starting at
// (S − crop) / 2 (floored), and resizes them back bilinearly.
func zoom(x *torch.Tensor, z float64) *torch.Tensor {
	if x == nil {
		return nil
	}
	size := x.Size(-1)
	crop := zoomCrop(size, z)
	off := (size - crop) / 2
	c := x.Narrow(2, off, crop).Narrow(3, off, crop)
	return torch.Interpolate(c, size, size, torch.Resize{Mode: torch.Bilinear})
}

func zoomMask(m *torch.Tensor, z float64) *torch.Tensor {
	if m == nil {
		return nil
	}
	return binarize(zoom(m, z))
}

// jitter scales brightness by b, then contrast by c around the mean over
// channels and rows (dims 1 and 2 of [N, C, H, W]: one mean per image and
// column), clamping to [0, 1] only at the end. b and c are drawn once for
// the whole group, brightness first, each 1 + U[0, 1)·0.4 − 0.2.
func jitter(x *torch.Tensor, g *torch.Generator) *torch.Tensor {
	u, err := torch.Rand(g, torch.Float64, torch.CPU, 2).Float64s()
	if err != nil {
		return torch.Failed("augment", "drawing the jitter factors: %v", err)
	}
	b := 1 + u[0]*0.4 - 0.2
	c := 1 + u[1]*0.4 - 0.2
	y := x.MulScalar(b)
	mean := y.MeanDims(torch.KeepDims, 1, 2)
	return y.Sub(mean).MulScalar(c).Add(mean).Clamp(0, 1)
}

// flip reverses dimension dim (3: horizontal, 2: vertical).
func flip(x *torch.Tensor, dim int64) *torch.Tensor {
	if x == nil {
		return nil
	}
	n := x.Size(int(dim))
	idx := torch.Arange(float64(n-1), -1, -1, torch.Int64, x.Device())
	return x.IndexSelect(dim, idx)
}
