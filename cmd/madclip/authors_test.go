package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// export authors then import authors through the binary: the imported
// checkpoint predicts what the original does.
func TestAuthorsExportImportCLI(t *testing.T) {
	root, ck := trained(t)
	dir := t.TempDir()
	pth := filepath.Join(dir, "Brain.pth")
	o, e, code := madclip(t, nil, "export", "authors", ck, pth)
	if code != 0 || !strings.Contains(o, "--obj Brain --img_size 112") {
		t.Fatalf("export: exit %d %s %s", code, o, e)
	}
	back := filepath.Join(dir, "back.safetensors")
	o, e, code = madclip(t, nil, "import", "authors", pth, "--dataset", "Brain", "--preset", "tiny", "--image-size", "112", "--out", back)
	if code != 0 || !strings.Contains(o, "wrote "+back) || !strings.Contains(o, "anomaly map") {
		t.Fatalf("import: exit %d %s %s", code, o, e)
	}
	img := filepath.Join(root, "Brain_AD", "test", "Ungood", "img", "000.png")
	var scores []prediction
	for _, c := range []string{ck, back} {
		o, e, code := madclip(t, nil, "predict", img, "--checkpoint", c, "--json", "--device", "cpu")
		if code != 0 {
			t.Fatalf("predict with %s: %s", c, e)
		}
		var pr prediction
		if err := json.Unmarshal([]byte(o), &pr); err != nil {
			t.Fatal(err)
		}
		scores = append(scores, pr)
	}
	if scores[0].Score != scores[1].Score || scores[0].DetScore != scores[1].DetScore {
		t.Errorf("original %+v, imported %+v", scores[0], scores[1])
	}
	// Outputs never overwrite inputs; missing arguments are explained.
	_, e, code = madclip(t, nil, "export", "authors", ck, ck)
	wantFailure(t, "same file", e, code)
	_, e, code = madclip(t, nil, "import", "authors", pth, "--dataset", "Brain", "--preset", "tiny", "--out", pth)
	wantFailure(t, "same file", e, code)
	_, e, code = madclip(t, nil, "import", "authors", "--dataset", "Brain", "--preset", "tiny", "--out", back)
	wantFailure(t, "IN.pth", e, code)
	_, e, code = madclip(t, nil, "import", "authors", ck, "--dataset", "Brain", "--preset", "tiny", "--image-size", "112", "--out", back)
	wantFailure(t, ck, e, code)
}
