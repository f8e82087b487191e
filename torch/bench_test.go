package torch

import "testing"

// BenchmarkTinyAdd measures one bridge round trip: adding two 1-element
// tensors and freeing the result. scripts/bench_bridge.sh compares it with
// the same op in PyTorch eager Python.
func BenchmarkTinyAdd(b *testing.B) {
	err := Do(func() error {
		x := Ones(Float32, CPU, 1)
		y := Ones(Float32, CPU, 1)
		defer x.Free()
		defer y.Free()
		b.ResetTimer()
		for range b.N {
			z := x.Add(y)
			if z.err != nil {
				return z.err
			}
			z.Free()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTinyAddScoped is the same op with the result freed by a scope,
// as model code does it.
func BenchmarkTinyAddScoped(b *testing.B) {
	err := Do(func() error {
		x := Ones(Float32, CPU, 1)
		y := Ones(Float32, CPU, 1)
		defer x.Free()
		defer y.Free()
		b.ResetTimer()
		for range b.N {
			s := NewScope()
			_ = x.Add(y)
			s.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMatmul1024 reports the GFLOP/s of a 1024×1024 f32 matmul.
func BenchmarkMatmul1024(b *testing.B) {
	const n = 1024
	err := Do(func() error {
		x := Randn(nil, Float32, CPU, n, n)
		y := Randn(nil, Float32, CPU, n, n)
		defer x.Free()
		defer y.Free()
		x.Matmul(y).Free() // warm-up
		b.ResetTimer()
		for range b.N {
			z := x.Matmul(y)
			if z.err != nil {
				return z.err
			}
			z.Free()
		}
		b.StopTimer()
		b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCUDAMatmulBF16 reports the bf16 TFLOP/s of an 8192×8192 matmul
// on GPU 0 (skipped without CUDA).
func BenchmarkCUDAMatmulBF16(b *testing.B) {
	if !CUDAAvailable() {
		b.Skip("no CUDA device")
	}
	const n = 8192
	dev := CUDA(0)
	err := Do(func() error {
		x := Randn(nil, BFloat16, dev, n, n)
		y := Randn(nil, BFloat16, dev, n, n)
		defer x.Free()
		defer y.Free()
		x.Matmul(y).Free()
		if err := Synchronize(dev); err != nil {
			return err
		}
		b.ResetTimer()
		for range b.N {
			z := x.Matmul(y)
			if z.err != nil {
				return z.err
			}
			z.Free()
		}
		if err := Synchronize(dev); err != nil {
			return err
		}
		b.StopTimer()
		b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
