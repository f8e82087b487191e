package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Missing explains why the dataset called name has no folder under root
// (Dir(root, name)), as an error naming that folder with what the user most
// likely meant: a --data that does not exist (or holds an unexpanded ~), a
// dataset's own folder given as the root, a name given with its _AD suffix
// or in another case, or else the datasets that are there.
func Missing(root, name string) error {
	return fmt.Errorf("dataset %s: no folder %s%s", name, Dir(root, name), MissingHint(root, name))
}

// MissingHint is Missing's explanation alone, in parentheses after a
// space.
func MissingHint(root, name string) string {
	if !isDir(root) {
		if strings.HasPrefix(root, "~") {
			return fmt.Sprintf(" (--data %s: no such folder; the shell expands ~ only at the start of a word: write --data ~/… or $HOME/…)", root)
		}
		if st, err := os.Stat(root); err == nil && !st.IsDir() {
			return fmt.Sprintf(" (--data %s: a file, not the folder that holds the datasets)", root)
		}
		return fmt.Sprintf(" (--data %s: no such folder)", root)
	}
	if strings.HasSuffix(filepath.Base(filepath.Clean(root)), "_AD") && (isDir(filepath.Join(root, "valid")) || isDir(filepath.Join(root, "test"))) {
		return fmt.Sprintf(" (%s is a dataset's own folder: --data takes the folder that holds it, %s)", root, filepath.Dir(filepath.Clean(root)))
	}
	if trimmed, ok := strings.CutSuffix(name, "_AD"); ok && trimmed != "" && isDir(Dir(root, trimmed)) {
		return fmt.Sprintf(" (a dataset is named without its folder's _AD: --dataset %s)", trimmed)
	}
	there := Under(root)
	if d := otherCase(there, name); d != "" {
		return fmt.Sprintf(" (did you mean %s? names are case-sensitive)", d)
	}
	if len(there) == 0 {
		return fmt.Sprintf(" (%s holds no dataset: no {name}_AD folder)", root)
	}
	if len(there) > 8 {
		there = append(there[:8], "…")
	}
	return fmt.Sprintf(" (datasets under %s: %s)", root, strings.Join(there, ", "))
}

// OtherCase is the dataset under root whose name is name in another case
// ("Brain" for "brain"), or "".
func OtherCase(root, name string) string { return otherCase(Under(root), name) }

// otherCase is the name among names that is name in another case, or "".
func otherCase(names []string, name string) string {
	for _, d := range names {
		if d != name && strings.EqualFold(d, name) {
			return d
		}
	}
	return ""
}

// Under lists the names of the datasets under root: its {name}_AD folders,
// sorted.
func Under(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), "_AD"); ok && n != "" && isDir(filepath.Join(root, e.Name())) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
