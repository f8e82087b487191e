package main

import (
	"debug/elf"
	"os"
	"strings"
	"testing"
)

// The binary carries its own zlib and libjpeg (imaging/codecs) but must not
// export them: libtorch's dependencies load the shared libpng, libjpeg and
// zlib, whose calls would otherwise bind to the binary's copies (before the
// codecs were prelinked, 113 zlib and libjpeg symbols were exported and
// libjpeg.so's own internal calls went to the binary). This test binary is
// linked as madclip is, with the bridge and the codecs.
func TestCodecLibrariesNotExported(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatalf("open %s: %v", exe, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatalf("%s: dynamic symbols: %v", exe, err)
	}
	var defined, leaked []string
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF {
			continue
		}
		defined = append(defined, s.Name)
		if strings.HasPrefix(s.Name, "jpeg_") || strings.HasPrefix(s.Name, "inflate") || strings.HasPrefix(s.Name, "deflate") ||
			strings.HasPrefix(s.Name, "mc_") || s.Name == "crc32" || s.Name == "adler32" || s.Name == "zlibVersion" {
			leaked = append(leaked, s.Name)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("%s exports %d codec symbols, e.g. %v", exe, len(leaked), leaked[:min(5, len(leaked))])
	}
	if len(defined) == 0 {
		t.Fatalf("%s defines no dynamic symbols: not the dynamically linked binary this test expects", exe)
	}
	t.Logf("%d dynamic symbols defined: %v", len(defined), defined)
}
