// Package plural writes counts with their noun, as a person would: "1
// epoch", "2 epochs".
package plural

import "fmt"

// Of writes n with noun, adding an s unless n is 1 (the nouns madclip
// counts all take one).
func Of(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
