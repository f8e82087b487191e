package train

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"madclip/dataset"
	"madclip/model"
	"madclip/torch"
)

// BenchmarkTrain16Shot times a 16-shot run (512 augmented images) on the
// synthetic Brain data: the feature cache, the mean step, and the whole run
// extrapolated to 60 epochs. MADCLIP_BENCH_PRESET picks the backbone
// ("ViT-L/14-336" with random weights on a GPU; "tiny" by default on a CPU),
// MADCLIP_BENCH_EPOCHS the epochs actually run (default 2).
func BenchmarkTrain16Shot(b *testing.B) {
	preset := os.Getenv("MADCLIP_BENCH_PRESET")
	dev := torch.CPU
	if torch.CUDAAvailable() {
		dev = torch.CUDA(0)
	}
	if preset == "" {
		preset = "tiny"
		if dev.IsCUDA() {
			preset = "ViT-L/14-336"
		}
	}
	epochs := 2
	if e, err := strconv.Atoi(os.Getenv("MADCLIP_BENCH_EPOCHS")); err == nil && e > 0 {
		epochs = e
	}
	root := b.TempDir()
	if err := dataset.Synth(root, dataset.SynthOptions{Seed: 1, Valid: 16, Test: 1, Size: 240}); err != nil {
		b.Fatal(err)
	}
	tk := tokenizer(b)
	for range b.N {
		c := Config{Data: root, Dataset: "Brain", Shots: 16, Seed: 1, Epochs: epochs, Preset: preset, BackboneSeed: 1,
			Device: dev, Model: model.Options{ImageSize: 240}, Out: filepath.Join(b.TempDir(), "ck.safetensors")}
		var res *Result
		err := torch.Do(func() error {
			var err error
			res, err = Run(context.Background(), c, tk, &quietReporter{})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		steps := 60 * 32
		full := res.TotalTime - time.Duration(epochs*32)*res.StepTime + time.Duration(steps)*res.StepTime
		b.ReportMetric(float64(res.StepTime.Microseconds())/1000, "ms/step")
		b.ReportMetric(res.CacheTime.Seconds(), "s-cache")
		b.ReportMetric(full.Seconds(), "s-60-epochs")
		b.Logf("%s on %s: cache %v, %v per step, %v for %d epochs, about %v for 60",
			preset, dev, res.CacheTime.Round(time.Millisecond), res.StepTime.Round(time.Microsecond), res.TotalTime.Round(time.Millisecond), epochs, full.Round(time.Second))
	}
}
