package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// didYouMean is " (did you mean NAME?)" for the name among names that word
// most likely mistypes (at most two edits away, or the only one it begins),
// else "".
func didYouMean(word string, names []string) string {
	best, bestDist := "", 3
	var prefixed []string
	for _, n := range names {
		if d := editDistance(strings.ToLower(word), strings.ToLower(n)); d < bestDist {
			best, bestDist = n, d
		}
		if word != "" && strings.HasPrefix(n, word) {
			prefixed = append(prefixed, n)
		}
	}
	if best == "" && len(prefixed) == 1 {
		best = prefixed[0]
	}
	if best == "" || best == word {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// commandNames are the names of cmds, the help command's included.
func commandNames(cmds []*cli.Command) []string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	return names
}

// unknownCommand is the error for a word that names no command among
// cmds; where is the commands' parent as typed ("madclip", "madclip weights").
func unknownCommand(where, word string, cmds []*cli.Command) error {
	return fmt.Errorf("unknown command %q%s (see %s --help)", word, didYouMean(word, commandNames(cmds)), where)
}

// helpTopic checks the words after "help" among cmds, the commands of
// where ("madclip", "madclip weights"): each must name a command (cli's
// own answer, "No help topic for 'x'", reads unlike every other error).
func helpTopic(cmds []*cli.Command, where string, words []string) error {
	for _, w := range words {
		if strings.HasPrefix(w, "-") {
			return nil
		}
		c := find(cmds, w)
		if c == nil {
			return fmt.Errorf("help: %w", unknownCommand(where, w, cmds))
		}
		cmds, where = c.Subcommands, where+" "+c.Name
	}
	return nil
}

// commandFlag says where a flag typed before any command (madclip
// --quiet train) belongs: the command words among args when that command
// has it, else COMMAND when some command has it, else "".
func commandFlag(app *cli.App, args []string, flag string) string {
	name := strings.TrimLeft(flag, "-")
	has := func(c *cli.Command) bool {
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				if n == name {
					return true
				}
			}
		}
		return false
	}
	cmds, path := app.Commands, ""
	for _, a := range args {
		c := find(cmds, a)
		if c == nil {
			continue
		}
		path += c.Name
		if has(c) {
			return path
		}
		cmds, path = c.Subcommands, path+" "
	}
	var anywhere func(cmds []*cli.Command) bool
	anywhere = func(cmds []*cli.Command) bool {
		for _, c := range cmds {
			if has(c) || anywhere(c.Subcommands) {
				return true
			}
		}
		return false
	}
	if anywhere(app.Commands) {
		return "COMMAND"
	}
	return ""
}

var invalidValue = regexp.MustCompile(`^invalid (boolean )?value "(.*)" for (?:flag )?-+(\S+): (.*)$`)

// invalidValueText rewrites the flag parser's "invalid value "abc" for flag
// -epochs: parse error" as the user typed it, saying what the flag takes.
func invalidValueText(s string) (string, bool) {
	m := invalidValue.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	flag, value := dashed(m[3]), m[2]
	switch {
	case m[1] != "":
		return fmt.Sprintf("%s is a switch: give it alone, or as %s=true or %s=false, not %q", flag, flag, flag, value), true
	case strings.Contains(m[4], "out of range"):
		return fmt.Sprintf("%s %s: the number is out of range", flag, value), true
	case isNegative(value): // a flag of unsigned numbers
		return fmt.Sprintf("%s %s: a negative number; it takes 0 or more", flag, value), true
	}
	return fmt.Sprintf("%s %s: not a number", flag, value), true
}

// isNegative says whether s is a number below zero as a user writes one.
func isNegative(s string) bool {
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f < 0
}
