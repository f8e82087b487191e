package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"madclip/checkpoint"
	"madclip/imaging"
	"madclip/internal/samepath"
	"madclip/model"
	"madclip/model/clip"
	"madclip/torch"
	"madclip/weights"
)

// isVersionFlag reports whether arg asks for the version, as cli reads
// the flag.
func isVersionFlag(arg string) bool {
	switch arg {
	case "--version", "-version", "-v", "--v":
		return true
	}
	return false
}

// flagsFirst moves a command's flags before its positional arguments, so
// that `madclip predict scan.png --checkpoint c.safetensors` works as users
// write it (urfave/cli stops reading flags at the first argument). A flag
// given twice (--epochs 5 ... --epochs 60, --draw-shots=true
// --draw-shots=false) is an error: the parser would keep the last without
// a word. List flags (--layers, --cross, --image) may repeat.
func flagsFirst(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	if isVersionFlag(args[1]) && len(args) > 2 {
		return nil, fmt.Errorf("%s takes nothing after it: %q would be ignored (madclip --version)", args[1], args[2])
	}
	cmds := app.Commands
	i := 1
	var cmd *cli.Command
	var path []string // the command's words, "import authors"
	for i < len(args) {
		if (args[i] == "help" || args[i] == "h") && (cmd == nil || len(cmd.Subcommands) > 0) {
			// madclip help X, madclip weights help X
			return args, helpTopic(cmds, strings.Join(append([]string{"madclip"}, path...), " "), args[i+1:])
		}
		c := find(cmds, args[i])
		if c == nil {
			break
		}
		cmd, cmds = c, c.Subcommands
		path = append(path, c.Name)
		i++
	}
	if cmd == nil || i >= len(args) {
		return args, nil
	}
	takesValue := map[string]bool{}
	canonical := map[string]string{} // any name → the flag's first name
	repeatable := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		switch f.(type) {
		case *cli.StringSliceFlag, *cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.Float64SliceFlag, *cli.Uint64SliceFlag, *cli.UintSliceFlag:
			repeatable[f.Names()[0]] = true
		}
		for _, n := range f.Names() {
			takesValue[n] = !isBool
			canonical[n] = f.Names()[0]
		}
	}
	given := map[string]bool{}
	var flags, positional []string
	rest := args[i:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			positional = append(positional, rest[j+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if c, ok := canonical[name]; ok && !repeatable[c] {
			if given[c] {
				name := strings.Join(path, " ")
				return nil, fmt.Errorf("%s: --%s is given twice; give it once (see madclip %s --help)", name, c, name)
			}
			given[c] = true
		}
		if hasValue {
			continue
		}
		if takesValue[name] {
			if j+1 == len(rest) {
				// The last flag lacks its value: leave it last so that the
				// parser says so, rather than reading "--" as its value.
				return append(append([]string{}, args[:i]...), flags...), nil
			}
			flags = append(flags, rest[j+1])
			j++
		}
	}
	out := append(append([]string{}, args[:i]...), flags...)
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out, nil
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// distinctPaths refuses two roles naming the same file (an output that
// would overwrite an input): the same path, or two paths to one file.
func distinctPaths(paths map[string]string) error {
	roles := make([]string, 0, len(paths))
	for r, p := range paths {
		if p != "" {
			roles = append(roles, r)
		}
	}
	sort.Strings(roles)
	for i, a := range roles {
		for _, b := range roles[i+1:] {
			if samepath.Same(paths[a], paths[b]) {
				return fmt.Errorf("%s and %s are the same file (%s)", a, b, paths[b])
			}
		}
	}
	return nil
}

// inRange checks integer flags against their bounds, naming the flag in the
// error: zero or negative values never silently become defaults.
func inRange(c *cli.Context, bounds map[string][2]int) error {
	names := make([]string, 0, len(bounds))
	for n := range bounds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !c.IsSet(n) && c.Int(n) == 0 {
			continue // not given and no default: the command picks one
		}
		b, v := bounds[n], c.Int(n)
		if v < b[0] || v > b[1] {
			return fmt.Errorf("--%s %d: want %d to %d", n, v, b[0], b[1])
		}
	}
	return nil
}

// Bounds of the integer flags shared by several commands.
var (
	imageSizeRange = [2]int{14, model.MaxImageSize} // at least one patch
	shotsRange     = [2]int{1, checkpoint.MaxShots}
	batchRange     = [2]int{1, checkpoint.MaxBatch}
	epochsRange    = [2]int{1, checkpoint.MaxEpochs}
)

// decodeFlags say what images are decoded: --max-pixels raises the
// decompression-bomb limit for very large scans, --damaged-jpeg accepts
// JPEGs with damaged data as PIL does.
func decodeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "max-pixels", Value: imaging.DefaultMaxPixels,
			Usage: "the largest image (width × height) to decode; a header claiming more is refused before decoding",
			Action: func(c *cli.Context, v int64) error {
				if v < 1 {
					return fmt.Errorf("%s: --max-pixels %d: want a positive number of pixels", c.Command.Name, v)
				}
				return nil
			}},
		&cli.BoolFlag{Name: "damaged-jpeg",
			Usage: "decode a JPEG whose compressed data is damaged as PIL does (lost parts become flat grey) instead of refusing it"},
	}
}

// decodeLimits is what decodeFlags ask for.
func decodeLimits(c *cli.Context) imaging.Limits {
	return imaging.Limits{MaxPixels: c.Int64("max-pixels"), DamagedJPEG: c.Bool("damaged-jpeg")}
}

// deviceFromFlag parses --device and checks that the device exists: on a
// bridge without CUDA, one line says so instead of libtorch's dispatcher
// dump.
func deviceFromFlag(c *cli.Context) (torch.Device, error) {
	d, err := torch.ParseDevice(c.String("device"))
	if err != nil || !d.IsCUDA() {
		return d, err
	}
	n := torch.CUDADeviceCount()
	switch {
	case n == 0:
		return d, fmt.Errorf("--device %s: this madclip sees no GPU: its bridge is built against a CPU-only libtorch, or no NVIDIA driver and GPU are present (README, \"Building against another libtorch (CUDA)\"); use --device cpu", c.String("device"))
	case d.Index >= n:
		return d, fmt.Errorf("--device %s: there are %d GPUs (cuda:0 to cuda:%d)", c.String("device"), n, n-1)
	}
	// The compute thread's current GPU, for kernels that launch on it.
	if err := torch.Do(func() error { return torch.SetCurrentDevice(d) }); err != nil {
		return d, fmt.Errorf("--device %s: %w", c.String("device"), err)
	}
	return d, nil
}

// roughly writes a duration as a person reads it: "984 ms", "12.7 s",
// "18 min 18 s", "2 h 5 min".
func roughly(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%d min %d s", d/time.Minute, (d%time.Minute)/time.Second)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%d h %d min", d/time.Hour, (d%time.Hour)/time.Minute)
}

// noProgress names the commands that print no progress lines, whose
// --quiet changes nothing.
var noProgress = map[string]bool{"clip": true, "tokenize": true, "doctor": true, "import authors": true,
	"export authors": true, "weights list": true, "weights path": true, "version": true}

// uniformFlags gives every command --quiet (-q: no progress lines; the
// results are still printed) and drops "(default: false)" from every
// switch's help line: a switch is off unless given.
//
// A string flag given as "" is an error (an empty --heatmap or --datasets
// would otherwise mean "not given"), and a flag that does not parse gives
// one line on standard error, not the help on standard output, where it
// would land in a --json > file.
func uniformFlags(cmds []*cli.Command, parent string) {
	for _, c := range cmds {
		name := strings.TrimSpace(parent + " " + c.Name)
		quiet := false
		var required []string
		require := func(flag string, req *bool, usage *string) {
			if *req {
				required, *req = append(required, flag), false
				*usage += " (required)"
			}
		}
		for _, f := range c.Flags {
			switch f := f.(type) {
			case *cli.StringSliceFlag:
				require(f.Name, &f.Required, &f.Usage)
			case *cli.BoolFlag:
				f.DisableDefaultText = true
			case *cli.StringFlag:
				require(f.Name, &f.Required, &f.Usage)
				if f.Action == nil {
					flag := f.Name
					f.Action = func(_ *cli.Context, v string) error {
						if v == "" {
							return fmt.Errorf("%s: --%s is empty", name, flag)
						}
						return nil
					}
				}
			}
			quiet = quiet || f.Names()[0] == "quiet"
		}
		if c.Action != nil && !quiet {
			usage := "no progress lines (results, warnings and notes still show)"
			if noProgress[name] {
				usage = "accepted on every command for scripts; this one prints no progress (its result still shows)"
			}
			c.Flags = append(c.Flags, &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: usage, DisableDefaultText: true})
		}
		cmd := c
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			text := usageText(err)
			if f, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
				f = strings.TrimLeft(f, "-")
				typed := typedFlag(f, os.Args[1:])
				text = "unknown flag " + typed + unknownFlagHint(f, typed, name, cmd)
			}
			return fmt.Errorf("%s: %s (see madclip %s --help)", name, text, name)
		}
		// Required flags are checked here rather than by cli, which would
		// print the whole help on standard output with its error. A command
		// that takes no arguments refuses one: it is most often a value
		// meant for a boolean flag (--quick-gelu false), which would
		// otherwise be dropped while the flag is set.
		noArgs := c.Action != nil && c.ArgsUsage == "" && len(c.Subcommands) == 0
		flags := c.Flags
		if c.Action != nil {
			c.Before = func(cc *cli.Context) error {
				if err := noFlagAsValue(cc, name, flags); err != nil {
					return err
				}
				if err := outputsAsKernelReads(cc); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if a := cc.Args().First(); noArgs && cc.Args().Present() {
					if _, err := strconv.ParseBool(a); err == nil {
						return fmt.Errorf("%s: unexpected argument %q: a boolean flag's value goes after =, as --flag=%s (see madclip %s --help)", name, a, a, name)
					}
					return fmt.Errorf("%s: unexpected argument %q: it takes none (see madclip %s --help)", name, a, name)
				}
				for _, r := range required {
					if !cc.IsSet(r) {
						return fmt.Errorf("%s: --%s is required (see madclip %s --help)", name, r, name)
					}
				}
				return nil
			}
		}
		if act := c.Action; act != nil {
			// Every error names its command, as "train: ...".
			c.Action = func(cc *cli.Context) error {
				err := act(cc)
				if err != nil && !strings.HasPrefix(err.Error(), name+":") {
					err = fmt.Errorf("%s: %w", name, err)
				}
				return err
			}
		}
		if c.Action == nil && len(c.Subcommands) > 0 {
			// Without its own action, cli answers an unknown subcommand
			// with "No help topic for ...".
			c.Action = func(cc *cli.Context) error {
				if cc.Args().Present() {
					return fmt.Errorf("%s: %w", name, unknownCommand("madclip "+name, cc.Args().First(), c.Subcommands))
				}
				return cli.ShowSubcommandHelp(cc)
			}
		}
		uniformFlags(c.Subcommands, name)
	}
}

// checkLayers refuses tapped blocks that cannot be: below 1 (blocks count
// from 1, as the paper's 6, 12, 18, 24) or listed twice.
func checkLayers(layers []int) error {
	seen := map[int]bool{}
	for _, l := range layers {
		if l < 1 {
			return fmt.Errorf("--layers %d: blocks count from 1 (the paper taps 6,12,18,24 of ViT-L/14)", l)
		}
		if seen[l] {
			return fmt.Errorf("--layers lists block %d twice", l)
		}
		seen[l] = true
	}
	return nil
}

// checkLayersFit refuses --layers naming a block the image tower lacks,
// from the preset's shape or the weights file's header, before the shots
// are read and CLIP is loaded. A preset or file that cannot tell is left
// to the loading, which names its problem.
func checkLayersFit(layers []int, preset, weightsPath string) error {
	if len(layers) == 0 {
		return nil
	}
	cfg, ok := clip.Preset(preset)
	what := "the " + preset + " preset"
	if preset == "" {
		var err error
		if cfg, err = weights.ConfigOf(weightsPath); err != nil {
			return nil
		}
		ok, what = true, weightsPath
	}
	if !ok {
		return nil
	}
	for _, l := range layers {
		if l > cfg.VisionLayers {
			return fmt.Errorf("--layers %d: the image tower of %s has %d blocks (1..%d)", l, what, cfg.VisionLayers, cfg.VisionLayers)
		}
	}
	return nil
}

// noFlagAsValue refuses a string flag whose value is another of the
// command's flags (or -h, --help, -v, --version), any value that starts
// with "--", and "-": `--raw-map --json` is a forgotten value, not a file
// called "--json" (with --json then left unset).
func noFlagAsValue(cc *cli.Context, command string, flags []cli.Flag) error {
	isFlag := map[string]bool{"-": true, "-h": true, "-v": true}
	for _, f := range flags {
		for _, n := range f.Names() {
			isFlag["-"+n], isFlag["--"+n] = true, true
		}
	}
	for _, f := range flags {
		var values []string
		switch f := f.(type) {
		case *cli.StringFlag:
			values = []string{cc.String(f.Name)}
		case *cli.StringSliceFlag:
			values = cc.StringSlice(f.Name)
		default:
			continue
		}
		if !cc.IsSet(f.Names()[0]) {
			continue
		}
		for _, v := range values {
			if opt, _, _ := strings.Cut(v, "="); isFlag[opt] || strings.HasPrefix(v, "--") {
				return fmt.Errorf("%s: --%s %s: that looks like a flag, not a value; give --%s its value (see madclip %s --help)", command, f.Names()[0], v, f.Names()[0], command)
			}
		}
	}
	return nil
}

// sizeOf is a file's size for progress lines ("870.1 MiB"), in the units
// downloads give.
func sizeOf(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "size unknown"
	}
	return sizeText(st.Size())
}

// oneBackbone refuses --weights with --preset: each names the backbone.
func oneBackbone(c *cli.Context) error {
	if c.String("weights") != "" && c.String("preset") != "" {
		return fmt.Errorf("--weights and --preset both name a backbone; give one")
	}
	if p := c.String("preset"); p != "" {
		if _, ok := clip.Preset(p); !ok {
			return fmt.Errorf("--preset %s: unknown (known: %s)", p, strings.Join(clip.PresetNames(), ", "))
		}
	}
	return nil
}

// oneLine escapes control characters (a newline in a file name, an escape
// sequence) as Go would write them in a string, and bytes that are not
// UTF-8 (a Latin-1 file name) as \xNN, so that a message or an output line
// stays one readable line and cannot drive the terminal.
func oneLine(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case isControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// isControl reports runes that would break a message's single line, steer
// the terminal or hide in it: C0, DEL, C1, Unicode's line and paragraph
// separators, and every format character (category Cf: the bidirectional
// controls, zero-width characters, the byte-order mark, the soft hyphen,
// tag characters), with which a name could read as another.
func isControl(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r == '\u2028', r == '\u2029':
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// usageText is a flag parser's error in the words of this command line:
// the flag as the user typed it, with two dashes.
func usageText(err error) string {
	s := err.Error()
	if f, ok := strings.CutPrefix(s, "flag needs an argument: "); ok {
		return dashed(f) + " needs a value"
	}
	if f, ok := strings.CutPrefix(s, "flag provided but not defined: "); ok {
		return "unknown flag " + dashed(f)
	}
	if t, ok := invalidValueText(s); ok {
		return t
	}
	return s
}

// unknownFlagHint is what to say after "unknown flag --NAME" (typed as
// typed) for the command c (called name): where an output is an argument
// (OUT) rather than --out, the command line to type; for what looks like a
// file, how to name it; else the flag it most likely mistypes (": did you
// mean --threshold?"), or "".
func unknownFlagHint(flag, typed, name string, c *cli.Command) string {
	if flag == "out" && strings.Contains(c.ArgsUsage, "OUT") {
		return fmt.Sprintf(": the output is an argument here, as in madclip %s %s", name, c.ArgsUsage)
	}
	if strings.ContainsAny(flag, "./") || exists(typed) {
		return fmt.Sprintf(": a file of that name is given as ./%s", typed)
	}
	var names []string
	for _, f := range c.Flags {
		for _, n := range f.Names() {
			if utf8.RuneCountInString(n) > 1 {
				names = append(names, n)
			}
		}
	}
	if h := didYouMean(flag, names); h != "" {
		best := strings.TrimSuffix(strings.TrimPrefix(h, " (did you mean "), "?)")
		return fmt.Sprintf(": did you mean --%s?", best)
	}
	return ""
}

// typedFlag is the unknown flag as args hold it ("-x.png" for a file name
// the flag parser reads as the flag x.png), or as dashed writes it when
// args lack it.
func typedFlag(flag string, args []string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(a, "=")
		if strings.HasPrefix(name, "-") && strings.TrimLeft(name, "-") == flag {
			return name
		}
	}
	return dashed(flag)
}

// exists says whether something is at path.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// dashed writes a flag's name as it is typed: -q for a letter, --quiet for
// a word.
func dashed(flag string) string {
	name := strings.TrimLeft(flag, "-")
	if utf8.RuneCountInString(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
