// Package shortname shortens file names that would exceed a length limit
// while keeping them distinct: two long names that differ only past the cut
// still get different short ones.
package shortname

import (
	"fmt"
	"hash/fnv"
	"unicode/utf8"
)

// Fit returns name unchanged when it has at most max bytes, else its start
// (cut at a character boundary) followed by "~" and eight hex digits of a
// hash of the whole name, max bytes at most in all. max must be at least
// 9.
func Fit(name string, max int) string {
	if len(name) <= max {
		return name
	}
	cut := max - 9
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("%s~%08x", name[:cut], h.Sum32())
}
