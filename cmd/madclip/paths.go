package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Paths as the kernel reads them. Go's path functions are lexical: they
// take "link/.." for the folder holding the link, where the kernel goes to
// the parent of the link's target. Outputs and the checks on them use
// these instead where a ".." can occur.

// absPath is p made absolute (p itself if that fails).
func absPath(p string) string {
	if !filepath.IsAbs(p) {
		// The kernel's working folder, not $PWD: after `cd` through a
		// link, $PWD keeps the link's path, and `..` then means another
		// folder to a lexical join than to the kernel.
		wd, err := syscall.Getwd()
		if err != nil {
			return filepath.Clean(p)
		}
		p = wd + string(filepath.Separator) + p
	}
	return kernelClean(p)
}

// kernelClean cleans the absolute path p as the kernel reads it: a `..`
// after a link leads to the parent of the link's target, not of the link.
// The part of p up to its last `..` is resolved (links followed) when it
// exists; the rest, with no `..` left, is cleaned lexically, keeping its
// links as named (a link called Brain_AD still says what it is).
func kernelClean(p string) string {
	parts := strings.Split(p, string(filepath.Separator))
	last := -1
	for i, part := range parts {
		if part == ".." {
			last = i
		}
	}
	if last < 0 {
		return filepath.Clean(p)
	}
	head := strings.Join(parts[:last+1], string(filepath.Separator))
	real, err := filepath.EvalSymlinks(head)
	if err != nil { // a folder that does not exist: the kernel would fail too
		return filepath.Clean(p)
	}
	return filepath.Join(append([]string{real}, parts[last+1:]...)...)
}

// outputFlags are the flags that name an output file or folder.
var outputFlags = []string{"out", "json-out", "work", "report", "heatmap", "raw-map", "panel", "mask", "dir"}

// outputsAsKernelReads rewrites an output flag's path that holds ".." as
// the kernel reads it (see kernelPath), so that every check and write
// after it, lexical as Go's path functions are, means the same folder.
func outputsAsKernelReads(c *cli.Context) error {
	for _, f := range outputFlags {
		if !c.IsSet(f) {
			continue
		}
		v := c.String(f)
		k, err := kernelPath(v)
		if err != nil {
			return fmt.Errorf("--%s %w", f, err)
		}
		if k != v {
			if err := c.Set(f, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// kernelPath is p itself, or, when p holds "..", its absolute form with
// each ".." resolved as the kernel does: after a link, ".." is the parent
// of the link's target, where filepath.Join and filepath.Dir would take
// the folder holding the link. The folders a ".." steps out of must exist,
// as the kernel requires.
//
// An output named like a flag ("-", "--x") is refused: madclip would not
// read it back as a file (give ./-x for that name).
func kernelPath(p string) (string, error) {
	if strings.HasPrefix(p, "-") {
		return "", fmt.Errorf("%s: that looks like a flag, not a file's name (give ./%s for a file so named)", oneLine(p), oneLine(p))
	}
	sep := string(filepath.Separator)
	parts := strings.Split(p, sep)
	last := -1
	for i, part := range parts {
		if part == ".." {
			last = i
		}
	}
	if last < 0 {
		return p, nil
	}
	through := strings.Join(parts[:last+1], sep)
	if st, err := os.Stat(through); err != nil || !st.IsDir() {
		return "", fmt.Errorf("%s: %s does not lead to a folder (the folders a \"..\" steps out of must exist)", p, through)
	}
	return absPath(p), nil
}
