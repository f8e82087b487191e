package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"madclip/internal/memlimit"
	"madclip/torch"

	"github.com/urfave/cli/v2"
)

func TestDoctorSelfCheck(t *testing.T) {
	var rep doctorReport
	if err := torch.Do(func() error { return runDoctor(&rep) }); err != nil {
		t.Fatal(err)
	}
	if !rep.SelfCheckPass {
		t.Fatalf("self-check failed: %v", rep.Problems)
	}
	if rep.Libtorch != torch.Version() || rep.Libtorch == "" {
		t.Errorf("libtorch %q", rep.Libtorch)
	}
	if !strings.Contains(rep.Bridge, "libmadclip_bridge") {
		t.Errorf("bridge library not found among the loaded libraries: %q", rep.Bridge)
	}
	if len(rep.TorchLibs) == 0 {
		t.Error("no libtorch library found among the loaded libraries")
	}
	if !(rep.MatmulGFLOPs > 0) {
		t.Errorf("matmul speed %v", rep.MatmulGFLOPs)
	}
	if machine := memlimit.Read().Machine; rep.Memory <= 0 || rep.Memory > machine {
		t.Errorf("memory %d, the machine has %d", rep.Memory, machine)
	}
}

func TestHasFastBLAS(t *testing.T) {
	if !hasFastBLAS([]string{"/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"}) {
		t.Error("OpenBLAS not recognised")
	}
	if hasFastBLAS([]string{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"}) {
		t.Error("the reference BLAS taken for a fast one")
	}
}

func TestHelpHasExamples(t *testing.T) {
	app := newApp()
	if !strings.Contains(app.Description, "madclip doctor") {
		t.Error("top-level help lacks examples")
	}
	for _, c := range app.Commands {
		if !strings.Contains(c.Description, "Examples:") {
			t.Errorf("%s: help lacks examples", c.Name)
		}
	}
	err := app.Run([]string{"madclip", "no-such-command"})
	if err == nil || !strings.Contains(err.Error(), `unknown command "no-such-command"`) {
		t.Errorf("unknown command: %v", err)
	}
}

// TestHelpFlagsConsistent: every flag of every command says what it is for,
// states its default at most once, and a switch does not print
// "(default: false)"; --json is a switch wherever it appears.
func TestHelpFlagsConsistent(t *testing.T) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := prefix + c.Name
			for _, f := range c.Flags {
				line := cli.FlagStringer(f)
				if strings.Count(line, "(default") > 1 || strings.Contains(line, "(default: false)") {
					t.Errorf("%s: %q", name, line)
				}
				if d, ok := f.(cli.DocGenerationFlag); ok && strings.TrimSpace(d.GetUsage()) == "" {
					t.Errorf("%s --%s has no description", name, f.Names()[0])
				}
				if f.Names()[0] == "json" {
					if _, ok := f.(*cli.BoolFlag); !ok {
						t.Errorf("%s --json is not a switch", name)
					}
				}
			}
			walk(name+" ", c.Subcommands)
		}
	}
	walk("", newApp().Commands)
	// --quiet everywhere.
	var quiet func(cmds []*cli.Command)
	quiet = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if len(c.Subcommands) > 0 { // a group: its commands have the flag
				quiet(c.Subcommands)
				continue
			}
			found := false
			for _, f := range c.Flags {
				found = found || f.Names()[0] == "quiet"
			}
			if !found {
				t.Errorf("%s has no --quiet", c.Name)
			}
			quiet(c.Subcommands)
		}
	}
	quiet(newApp().Commands)
}

// TestAddressLimitWarning: under ulimit -v every command warns once, and
// doctor reports the limit; without one, neither.
func TestAddressLimitWarning(t *testing.T) {
	if _, limited := addressLimit(); limited {
		t.Skip("the tests run under ulimit -v already")
	}
	const kib = 8000000 // enough for doctor to run
	cmd := exec.Command("sh", "-c", "ulimit -v "+strconv.Itoa(kib)+" && exec \"$0\" doctor --json", madclipBin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("doctor under ulimit -v: %v\n%s", err, e.String())
	}
	var rep doctorReport
	if err := json.Unmarshal(o.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.AddressLimit != kib*1024 {
		t.Errorf("limit %d, want %d", rep.AddressLimit, kib*1024)
	}
	if got := strings.TrimSpace(e.String()); !strings.HasPrefix(got, "madclip: warning: ulimit -v is 7.6 GiB") || strings.Count(got, "\n") != 0 {
		t.Errorf("stderr %q, want one warning line", got)
	}
	out, stderr, code := madclip(t, nil, "doctor", "--json")
	rep = doctorReport{}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.AddressLimit != 0 || strings.Contains(stderr, "ulimit") {
		t.Errorf("without a limit: exit %d, limit %d, stderr %q", code, rep.AddressLimit, stderr)
	}
}
