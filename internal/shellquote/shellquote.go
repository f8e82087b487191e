// Package shellquote writes a word so that a POSIX shell reads it back as
// that one word: for the commands madclip suggests in its messages, which
// a user pastes (a path with a space or a ';' must not become two words or
// a second command).
package shellquote

import "strings"

// Quote is s as one shell word: unchanged when every byte is one a shell
// takes literally, else in single quotes (a quote inside written '\”).
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// safe reports the runes no shell treats specially anywhere in a word.
func safe(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:@%+=,-", r)
}
