// Package samepath tells whether two paths a user gave name one file or
// folder: the same path written two ways, or a link to the other.
package samepath

import (
	"os"
	"path/filepath"
)

// Same reports whether a and b name one file or folder: equal once made
// absolute and cleaned, or, when both exist, the same inode.
func Same(a, b string) bool {
	if pa, err := filepath.Abs(a); err == nil {
		if pb, err := filepath.Abs(b); err == nil && pa == pb {
			return true
		}
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
