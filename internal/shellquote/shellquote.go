// Package shellquote writes a word so that a shell reads it back as that
// one word: for the commands madclip suggests in its messages, which a
// user pastes (a path with a space or a ';' must not become two words or a
// second command).
package shellquote

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Quote is s as one shell word: unchanged when every byte is one a shell
// takes literally; else in single quotes (a quote inside closes them, is
// escaped, and reopens them),
// or, when s holds bytes a terminal would not show as themselves (control
// characters, invisible format marks, bytes that are not UTF-8), in
// bash's $'…' with those bytes as \xHH, so that the word can be printed
// as it is and pasted back whole (bash, zsh and ksh read $'…'; POSIX sh
// before its 2024 edition does not).
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	if !showable(s) {
		return ansiC(s)
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Path is Quote for a file name given as an argument: one that begins with
// '-' gets "./" in front, so that it is not read as a flag.
func Path(p string) string {
	if strings.HasPrefix(p, "-") {
		p = "./" + p
	}
	return Quote(p)
}

// safe reports the runes no shell treats specially anywhere in a word.
func safe(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:@%+=,-", r)
}

// showable reports whether every rune of s is valid UTF-8 that prints as
// itself.
func showable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !(unicode.IsPrint(r) || r == ' ') {
			return false
		}
	}
	return true
}

// ansiC writes s in $'…': printable runes as they are, backslash and quote
// escaped, every byte of anything else as \xHH.
func ansiC(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r != utf8.RuneError && unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		}
		i += n
	}
	b.WriteString("'")
	return b.String()
}
