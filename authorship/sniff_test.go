package authorship

import "testing"

// Files are told by their format's signature, whoever wrote them; text
// matching none is told as nothing.
func TestSniff(t *testing.T) {
	for head, want := range map[string]string{
		pngSignature + "\x00\x00":      "a PNG image",
		"\xff\xd8\xff\xe0\x00\x10JFIF": "a JPEG image",
		"GIF89a":                       "a GIF image",
		"II*\x00\x08\x00":              "a TIFF image",
		npyMagic + "\x01\x00":          "a NumPy array",
		"PK\x03\x04\x14\x00":           "a zip archive",
		"\x1f\x8b\x08\x00":             "a gzip file",
		"%PDF-1.7":                     "a PDF document",
		"  {\"a\": 1}":                 "a JSON document",
		"\ufeff[1, 2]":                 "a JSON document",
		"hello":                        "",
		"":                             "",
		"\xff\xd8":                     "",
	} {
		if got := Sniff([]byte(head)); got != want {
			t.Errorf("Sniff(%q) = %q, want %q", head, got, want)
		}
	}
	for _, c := range []struct {
		meta map[string]string
		want Kind
	}{
		{map[string]string{"written_by": "madclip", "madclip": "{}"}, Checkpoint},
		{map[string]string{"written_by": "madclip", "format": "pt"}, Weights},
		{map[string]string{"converted_by": "madclip"}, Weights},
		{map[string]string{"format": "pt"}, None},
	} {
		if got := MetadataKind(c.meta); got != c.want {
			t.Errorf("MetadataKind(%v) = %q, want %q", c.meta, got, c.want)
		}
	}
}
