package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"madclip/internal/memlimit"
	"madclip/torch"
)

// doctorReport is what `madclip doctor` finds out about this machine.
type doctorReport struct {
	Madclip       string   `json:"madclip"`
	Go            string   `json:"go"`
	Libtorch      string   `json:"libtorch"`
	Bridge        string   `json:"bridge_library"`
	TorchLibs     []string `json:"torch_libraries"`
	BLAS          []string `json:"blas_libraries"`
	BLASConfig    string   `json:"blas_config"`
	Threads       int      `json:"threads"`
	CUDADevices   int      `json:"cuda_devices"`
	MatmulGFLOPs  float64  `json:"matmul_gflops"`
	MatmulDevice  string   `json:"matmul_device"`
	SelfCheckPass bool     `json:"self_check_passed"`
	// AddressLimit is the address-space limit (ulimit -v) in bytes, 0 for
	// none: see addressLimitWarning.
	AddressLimit uint64 `json:"address_space_limit_bytes"`
	// Memory is what madclip sizes its decoding guards by: the machine's
	// memory, or its cgroup's limit (CgroupLimit, 0 for none) where lower.
	Memory      int64    `json:"memory_bytes"`
	CgroupLimit int64    `json:"cgroup_memory_limit_bytes"`
	Problems    []string `json:"problems,omitempty"`
}

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check the libtorch build, the BLAS in use, CUDA, and run a small self-check",
		Description: `Prints the libtorch version the bridge runs on, which BLAS library is
actually loaded (Debian's libtorch is ~30x slower on the reference BLAS: install
libopenblas0-pthread), whether CUDA is available, and a matmul speed figure.
Exits non-zero when the self-check fails.

Examples:
  madclip doctor
  madclip doctor --json`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			var rep doctorReport
			if err := onCompute(func() error { return runDoctor(&rep) }); err != nil {
				return err
			}
			if c.Bool("json") {
				b, err := marshalJSON(rep, "  ")
				if err == nil {
					_, err = fmt.Fprintln(c.App.Writer, string(b))
				}
				if err != nil {
					return err
				}
			} else {
				printDoctor(c.App.Writer, rep)
			}
			if !rep.SelfCheckPass {
				return fmt.Errorf("self-check failed: %s", strings.Join(rep.Problems, "; "))
			}
			return nil
		},
	}
}

func runDoctor(rep *doctorReport) error {
	rep.Madclip = version
	rep.Go = runtime.Version()
	rep.Libtorch = torch.Version()
	rep.Threads = torch.NumThreads()
	rep.CUDADevices = torch.CUDADeviceCount()
	rep.AddressLimit, _ = addressLimit()
	mem := memlimit.Read()
	rep.Memory, rep.CgroupLimit = mem.Usable(), mem.Cgroup
	if cfg, err := torch.BuildConfig(); err == nil {
		for _, l := range strings.Split(cfg, "\n") {
			if i := strings.Index(l, "BLAS_INFO="); i >= 0 {
				rep.BLASConfig = strings.TrimSuffix(strings.Fields(l[i:])[0], ",")
			}
		}
	}
	libs := loadedLibraries()
	for _, l := range libs {
		base := l[strings.LastIndex(l, "/")+1:]
		switch {
		case strings.Contains(base, "madclip_bridge"):
			rep.Bridge = l
		case strings.Contains(base, "blas") || strings.Contains(base, "mkl"):
			rep.BLAS = append(rep.BLAS, l)
		case strings.HasPrefix(base, "libtorch") || strings.HasPrefix(base, "libc10"):
			rep.TorchLibs = append(rep.TorchLibs, l)
		}
	}
	if len(rep.BLAS) > 0 && !hasFastBLAS(rep.BLAS) && rep.BLASConfig != "mkl" {
		rep.Problems = append(rep.Problems, "the reference BLAS is loaded: install libopenblas0-pthread for ~30x faster CPU matmul")
	}

	dev := torch.CPU
	if rep.CUDADevices > 0 {
		dev = torch.CUDA(0)
	}
	rep.MatmulDevice = dev.String()
	err := torch.Scoped(func(s *torch.Scope) error {
		// Self-check: a small known product and a gradient.
		a := torch.FromSlice([]float32{1, 2, 3, 4}, 2, 2).ToDevice(dev)
		if err := a.SetRequiresGrad(true); err != nil {
			return err
		}
		prod, err := a.Matmul(a).Float32s()
		if err != nil {
			return err
		}
		want := []float32{7, 10, 15, 22}
		for i := range want {
			if prod[i] != want[i] {
				rep.Problems = append(rep.Problems, fmt.Sprintf("matmul gave %v, want %v", prod, want))
				break
			}
		}
		if err := a.Square().Sum().Backward(); err != nil {
			return err
		}
		g, err := a.Grad().Float32s()
		if err != nil {
			return err
		}
		if g[3] != 8 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("gradient of sum(x²) gave %v", g))
		}
		// Speed: 512×512 f32 matmuls for about a quarter second.
		x := torch.Randn(nil, torch.Float32, dev, 512, 512)
		x.Matmul(x).Free()
		if err := torch.Synchronize(dev); err != nil {
			return err
		}
		start := time.Now()
		n := 0
		for time.Since(start) < 250*time.Millisecond {
			x.Matmul(x).Free()
			n++
		}
		if err := torch.Synchronize(dev); err != nil {
			return err
		}
		rep.MatmulGFLOPs = 2 * 512 * 512 * 512 * float64(n) / time.Since(start).Seconds() / 1e9
		return nil
	})
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.SelfCheckPass = len(rep.Problems) == 0
	return nil
}

// hasFastBLAS reports whether an optimised BLAS (OpenBLAS, BLIS, MKL) is
// among the loaded libraries.
func hasFastBLAS(libs []string) bool {
	for _, l := range libs {
		if strings.Contains(l, "openblas") || strings.Contains(l, "blis") || strings.Contains(l, "mkl") {
			return true
		}
	}
	return false
}

// loadedLibraries lists the shared libraries mapped into this process, with
// symbolic links resolved, so that the report names the real files.
func loadedLibraries() []string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.Contains(fields[5], ".so") {
			continue
		}
		p := fields[5]
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		seen[p] = true
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func printDoctor(w io.Writer, r doctorReport) {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(w, "madclip        %s (%s)\n", r.Madclip, r.Go)
	fmt.Fprintf(w, "libtorch       %s\n", r.Libtorch)
	fmt.Fprintf(w, "bridge         %s\n", r.Bridge)
	for _, l := range r.TorchLibs {
		fmt.Fprintf(w, "               %s\n", l)
	}
	blas := "none loaded"
	if len(r.BLAS) > 0 {
		blas = strings.Join(r.BLAS, ", ")
	}
	fmt.Fprintf(w, "BLAS           %s (libtorch built with %s)\n", blas, r.BLASConfig)
	fmt.Fprintf(w, "threads        %d\n", r.Threads)
	fmt.Fprintf(w, "CUDA           %s (%d device(s))\n", yes(r.CUDADevices > 0), r.CUDADevices)
	fmt.Fprintf(w, "matmul f32     %.1f GFLOP/s on %s (512x512)\n", r.MatmulGFLOPs, r.MatmulDevice)
	if r.AddressLimit > 0 {
		fmt.Fprintf(w, "ulimit -v      %.1f GiB: may fail or hang far below it (see the warning above)\n", float64(r.AddressLimit)/(1<<30))
	} else {
		fmt.Fprintln(w, "ulimit -v      none")
	}
	cgroup := "no cgroup limit"
	if r.CgroupLimit > 0 {
		cgroup = fmt.Sprintf("cgroup limit %.1f GiB", float64(r.CgroupLimit)/(1<<30))
	}
	fmt.Fprintf(w, "memory         %.1f GiB usable (%s)\n", float64(r.Memory)/(1<<30), cgroup)
	if r.SelfCheckPass {
		fmt.Fprintln(w, "self-check     passed")
	} else {
		fmt.Fprintln(w, "self-check     FAILED")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
}

// addressLimit is the process's address-space limit (ulimit -v) in bytes,
// if one is set.
func addressLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &r); err != nil || r.Cur == ^uint64(0) { // RLIM_INFINITY
		return 0, false
	}
	return r.Cur, true
}

// addressLimitWarning is a line for stderr when an address-space limit is
// set, or "". Go reserves address space for its heap, libtorch maps its
// libraries, and OpenBLAS maps a buffer per thread: under `ulimit -v` the
// process can stop with "out of memory" or, inside OpenBLAS, retry its
// mapping forever, long before the resident memory reaches the limit.
func addressLimitWarning() string {
	n, ok := addressLimit()
	if !ok {
		return ""
	}
	return fmt.Sprintf("madclip: warning: ulimit -v is %.1f GiB; under an address-space limit madclip can fail with \"out of memory\" or hang inside OpenBLAS far below it (a second Ctrl-C stops training); prefer ulimit -v unlimited and a resident-memory limit (systemd-run --scope -p MemoryMax=8G madclip ...)", float64(n)/(1<<30))
}
