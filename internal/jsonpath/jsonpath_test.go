package jsonpath

import (
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"madclip/internal/reftest"
)

var names = []string{
	"scan.png", "", "dA/x.png", "two\nlines.png", `quote"and\back.png`, "é/ü.png", "<&>.png",
	"caf\xe9.png", "\xff\xfe", "a\xc3", "\xed\xa0\x80.png", "𝄞\x80𝄞", "tail\xe2\x82",
}

// Every name comes back byte for byte through Marshal and Unmarshal, and
// valid UTF-8 is written exactly as encoding/json writes a string.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	all := append([]string(nil), names...)
	for range 2000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		all = append(all, string(b))
	}
	for _, n := range all {
		js, err := json.Marshal(struct {
			P Path `json:"p"`
		}{Path(n)})
		if err != nil {
			t.Fatalf("%q: %v", n, err)
		}
		var back struct {
			P Path `json:"p"`
		}
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("%q: %s: %v", n, js, err)
		}
		if string(back.P) != n {
			t.Fatalf("%q came back as %q (%s)", n, back.P, js)
		}
		if !json.Valid(js) {
			t.Fatalf("%q: invalid JSON %s", n, js)
		}
		if strings.ToValidUTF8(n, "") == n {
			plain, _ := json.Marshal(n)
			mine, _ := Path(n).MarshalJSON()
			if string(plain) != string(mine) {
				t.Fatalf("%q: %s, encoding/json writes %s", n, mine, plain)
			}
		}
	}
	// JSON written elsewhere: escapes, pairs, and surrogates that stand
	// for no byte.
	for js, want := range map[string]string{
		`"a\u00e9\n\/"`:        "a\u00e9\n/",
		`"\ud834\udd1e"`:       "𝄞",
		`"\udcff\udc80x"`:      "\xff\x80x",
		`"\udc7f"`:             "\uFFFD",
		`"\ud834x"`:            "\uFFFDx",
		`"\uDCE9"`:             "\xe9",
		`"\ud834\udce9"`:       "\U0001d0e9",
		`"\udce9\ud834\udd1e"`: "\xe9𝄞",
	} {
		var p Path
		if err := json.Unmarshal([]byte(js), &p); err != nil || string(p) != want {
			t.Errorf("%s: %q %v, want %q", js, p, err, want)
		}
	}
	for _, bad := range []string{`"\udc`, `"\x"`, `"a`, `5`, "\"a\tb\""} {
		var p Path
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s accepted as %q", bad, p)
		}
	}
}

// Python reads the names back as its own file names: json.loads, then
// os.fsencode (surrogateescape) gives the bytes.
func TestPythonReadsNames(t *testing.T) {
	py := reftest.Python(t, "json")
	js, err := json.Marshal(func() []Path {
		var ps []Path
		for _, n := range names {
			ps = append(ps, Path(n))
		}
		return ps
	}())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", `import sys, json, os
for n in json.loads(sys.stdin.read()):
    print(os.fsencode(n).hex())`)
	cmd.Stdin = strings.NewReader(string(js))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(names) {
		t.Fatalf("python read %d names, want %d: %s", len(lines), len(names), out)
	}
	for i, n := range names {
		want := ""
		for _, c := range []byte(n) {
			want += strings.ToLower(string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15]))
		}
		if lines[i] != want {
			t.Errorf("%q: python has %s", n, lines[i])
		}
	}
}
