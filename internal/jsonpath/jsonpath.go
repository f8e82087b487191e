// Package jsonpath carries file names through JSON byte for byte.
//
// A Linux file name is any bytes, not always UTF-8 (a folder copied from
// an old Windows share keeps its Latin-1 names). encoding/json writes each
// invalid byte as U+FFFD, so two different files could be named alike and
// none of them could be opened from the JSON. Path writes such a byte as
// Python's surrogateescape does, "\udcXX" (XX the byte, 80 to ff), which
// Python's json.loads followed by os.fsencode turns back into the name,
// and which Path reads back likewise. Valid UTF-8 is written as
// encoding/json writes it.
package jsonpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Path is a file name in JSON.
type Path string

// MarshalJSON writes p as a JSON string, invalid UTF-8 bytes as \udcXX.
func (p Path) MarshalJSON() ([]byte, error) {
	s := string(p)
	if utf8.ValidString(s) {
		return json.Marshal(s)
	}
	var b strings.Builder
	b.WriteByte('"')
	for len(s) > 0 {
		n := validPrefix(s)
		if n > 0 {
			q, err := json.Marshal(s[:n])
			if err != nil {
				return nil, err
			}
			b.Write(q[1 : len(q)-1])
			s = s[n:]
			continue
		}
		fmt.Fprintf(&b, `\udc%02x`, s[0]) // an invalid byte is ≥ 0x80
		s = s[1:]
	}
	b.WriteByte('"')
	return []byte(b.String()), nil
}

// validPrefix is the length of the longest valid UTF-8 prefix of s.
func validPrefix(s string) int {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		i += n
	}
	return i
}

// UnmarshalJSON reads a JSON string, turning \udc80…\udcff that is not
// half of a surrogate pair back into the byte it stands for.
func (p *Path) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	if !strings.Contains(strings.ToLower(string(data)), `\udc`) {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*p = Path(s)
		return nil
	}
	s, err := unquote(data)
	if err != nil {
		return err
	}
	*p = Path(s)
	return nil
}

var errSyntax = errors.New("jsonpath: not a JSON string")

// unquote decodes a JSON string literal, with lone low surrogates
// U+DC80…U+DCFF standing for the bytes 0x80…0xff.
func unquote(data []byte) (string, error) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return "", errSyntax
	}
	in := data[1 : len(data)-1]
	var b strings.Builder
	for i := 0; i < len(in); {
		c := in[i]
		if c != '\\' {
			if c == '"' || c < 0x20 {
				return "", errSyntax
			}
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(in) {
			return "", errSyntax
		}
		switch e := in[i+1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(in, i+2)
			if !ok {
				return "", errSyntax
			}
			i += 6
			if utf16.IsSurrogate(r) && r < 0xdc00 { // a high surrogate: a pair?
				if r2, ok := hex4(in, i+2); ok && i+1 < len(in) && in[i] == '\\' && in[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
						b.WriteRune(pair)
						i += 6
						continue
					}
				}
				b.WriteRune(utf8.RuneError)
				continue
			}
			if r >= 0xdc80 && r <= 0xdcff {
				b.WriteByte(byte(r - 0xdc00))
				continue
			}
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
			}
			b.WriteRune(r)
			continue
		default:
			return "", errSyntax
		}
		i += 2
	}
	return b.String(), nil
}

// hex4 reads the four hexadecimal digits at in[i:].
func hex4(in []byte, i int) (rune, bool) {
	if i+4 > len(in) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(in[i:i+4]), 16, 16)
	return rune(v), err == nil
}
