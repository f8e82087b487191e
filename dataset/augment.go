package dataset

import (
	"math"

	"madclip/torch"
)

// Variants is the number of images the static augmentation makes of each shot.
const Variants = 16

// Augment builds MadCLIP's static 16× training set from images
// [N, 3, S, S] and masks [N, 1, S, S] (nil without masks), variant by
// variant: the originals; rotations by ±π/16 and ±π/8 and translations by
// (±0.1, ±0.1) of the size (bilinear, reflection padding); centre zooms by
// 1.1, 1.15, 1.2, 1.3 (crop, bilinear resize back); one brightness and
// contrast jitter with factors from U[0.8, 1.2] (values clamped to [0, 1]);
// horizontal and vertical flips. Masks follow the geometry and are
// re-thresholded at 0.5. The jitter draws from g.
func Augment(images, masks *torch.Tensor, g *torch.Generator) (*torch.Tensor, *torch.Tensor) {
	var imgs, msks []*torch.Tensor
	add := func(i, m *torch.Tensor) {
		imgs = append(imgs, i)
		if masks != nil {
			msks = append(msks, m)
		}
	}
	add(images, masks)
	for _, a := range []float64{math.Pi / 16, -math.Pi / 16, math.Pi / 8, -math.Pi / 8} {
		c, s := math.Cos(a), math.Sin(a)
		add(affine(images, masks, [6]float64{c, -s, 0, s, c, 0}))
	}
	for _, d := range [][2]float64{{0.1, 0.1}, {0.1, -0.1}, {-0.1, 0.1}, {-0.1, -0.1}} {
		// A shift of 0.1 of the size is 0.2 in grid_sample's [-1, 1] coordinates.
		add(affine(images, masks, [6]float64{1, 0, 2 * d[0], 0, 1, 2 * d[1]}))
	}
	for _, z := range []float64{1.1, 1.15, 1.2, 1.3} {
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
	shape := images.Shape()
	n := shape[0]
	theta := torch.FromSlice(th[:], 1, 2, 3).To(images.DType(), images.Device()).Expand(n, 2, 3)
	grid := torch.AffineGrid(theta, [4]int64{n, shape[1], shape[2], shape[3]}, false)
	img := torch.GridSample(images, grid, torch.Bilinear, torch.PadReflection, false)
	if masks == nil {
		return img, nil
	}
	m := torch.GridSample(masks, grid, torch.Bilinear, torch.PadReflection, false)
	return img, binarize(m)
}

func binarize(m *torch.Tensor) *torch.Tensor { return m.GtScalar(0.5).ToDType(m.DType()) }

// zoom crops the centre 1/z of each side and resizes it back bilinearly.
func zoom(x *torch.Tensor, z float64) *torch.Tensor {
	if x == nil {
		return nil
	}
	size := x.Size(-1)
	crop := int64(math.Round(float64(size) / z))
	off := (size - crop) / 2
	c := x.Narrow(2, off, crop).Narrow(3, off, crop)
	return torch.Interpolate(c, size, size, torch.Bilinear, false, false)
}

func zoomMask(m *torch.Tensor, z float64) *torch.Tensor {
	if m == nil {
		return nil
	}
	return binarize(zoom(m, z))
}

// jitter scales brightness by b, then contrast around each image's grey
// mean by c, both drawn per image from U[0.8, 1.2].
func jitter(x *torch.Tensor, g *torch.Generator) *torch.Tensor {
	n := x.Size(0)
	dev := x.Device()
	b := torch.Rand(g, torch.Float32, torch.CPU, n, 1, 1, 1).MulScalar(0.4).AddScalar(0.8).ToDevice(dev)
	c := torch.Rand(g, torch.Float32, torch.CPU, n, 1, 1, 1).MulScalar(0.4).AddScalar(0.8).ToDevice(dev)
	y := x.Mul(b).Clamp(0, 1)
	grey := torch.FromSlice([]float32{0.299, 0.587, 0.114}, 1, 3, 1, 1).ToDevice(dev)
	mean := y.Mul(grey).SumDims(true, 1).MeanDims(true, 2, 3)
	return y.Sub(mean).Mul(c).Add(mean).Clamp(0, 1)
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
