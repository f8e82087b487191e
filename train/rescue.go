package train

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// saveOrRescue writes a checkpoint with save at out. When that fails at the
// end of a long run (the output folder unmounted or removed with its
// parent, the disk full, the file replaced by something madclip does not
// overwrite), the trained parameters are not thrown away: save is tried
// again under a new name in the working folder, then in the temporary
// folder. It returns where the checkpoint went ("" when nowhere) and out's
// error.
func saveOrRescue(out string, save func(path string) error) (string, error) {
	err := save(out)
	if err == nil {
		return out, nil
	}
	for _, dir := range rescueFolders(out) {
		if p := rescueName(dir, out, time.Now()); p != "" && save(p) == nil {
			return p, err
		}
	}
	return "", err
}

// rescueFolders lists where saveOrRescue tries: the working folder and the
// temporary folder, as absolute paths, less out's own folder.
func rescueFolders(out string) []string {
	outDir, _ := filepath.Abs(filepath.Dir(out))
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	dirs = append(dirs, os.TempDir())
	var keep []string
	for _, d := range dirs {
		if abs, err := filepath.Abs(d); err == nil && abs != outDir && !slices.Contains(keep, abs) {
			keep = append(keep, abs)
		}
	}
	return keep
}

// rescueName is a name in dir for a rescued copy of out that nothing holds
// yet: out's name with ".rescued-TIME" before its extension ("" if ten
// tries find none free).
func rescueName(dir, out string, now time.Time) string {
	base := filepath.Base(out)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	for i := range 10 {
		name := fmt.Sprintf("%s.rescued-%s%s", stem, now.Format("20060102-150405"), ext)
		if i > 0 {
			name = fmt.Sprintf("%s.rescued-%s-%d%s", stem, now.Format("20060102-150405"), i+1, ext)
		}
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			return p
		}
	}
	return ""
}
