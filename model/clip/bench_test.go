package clip

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"madclip/torch"
)

// benchBatches reads MADCLIP_BENCH_BATCHES ("16,64"); the default is 2 on a
// CPU (ViT-L/14 takes seconds per image there) and 16,64 on a GPU.
func benchBatches(dev torch.Device) []int {
	spec := os.Getenv("MADCLIP_BENCH_BATCHES")
	if spec == "" {
		spec = "2"
		if dev.IsCUDA() {
			spec = "16,64"
		}
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// BenchmarkViTL14At240 is MadCLIP's backbone: the ViT-L/14-336 image tower
// (random weights) at 240 px, forward without a graph, fp32 and, on a GPU,
// bf16 autocast. It reports images/s; scripts/bench_clip.sh sets it beside
// PyTorch eager on the same machine. MADCLIP_BENCH_DEVICE picks the device.
func BenchmarkViTL14At240(b *testing.B) {
	devName := os.Getenv("MADCLIP_BENCH_DEVICE")
	if devName == "" {
		devName = "auto"
	}
	err := torch.Do(func() error {
		dev, err := torch.ParseDevice(devName)
		if err != nil {
			return err
		}
		start := time.Now()
		m, err := New(presets["ViT-L/14-336"], Options{ImageSize: 240, Activation: GELU, Device: dev}, 1)
		if err != nil {
			return err
		}
		defer m.Free()
		b.Logf("ViT-L/14-336 at 240 px on %s, built in %v", dev, time.Since(start).Round(time.Millisecond))
		precisions := []string{"fp32"}
		if dev.IsCUDA() {
			precisions = append(precisions, "bf16")
		}
		for _, prec := range precisions {
			for _, batch := range benchBatches(dev) {
				b.Run(fmt.Sprintf("%s/batch%d", prec, batch), func(b *testing.B) {
					err := torch.Scoped(func(s *torch.Scope) error {
						x := torch.Rand(nil, torch.Float32, dev, int64(batch), 3, 240, 240)
						step := func() error {
							return torch.Scoped(func(s *torch.Scope) error {
								run := func() error {
									y := m.EncodeImage(x)
									return y.Err()
								}
								if prec == "bf16" {
									return torch.Autocast(torch.DeviceCUDA, torch.BFloat16, run)
								}
								return run()
							})
						}
						if err := step(); err != nil { // warm-up
							return err
						}
						if err := torch.Synchronize(dev); err != nil {
							return err
						}
						b.ResetTimer()
						for range b.N {
							if err := step(); err != nil {
								return err
							}
						}
						if err := torch.Synchronize(dev); err != nil {
							return err
						}
						b.StopTimer()
						b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "img/s")
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				})
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
