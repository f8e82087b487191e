package bpe

import (
	"bytes"
	_ "embed"
	"fmt"
	"sync"
)

// The official CLIP merges file (MIT, Copyright (c) 2021 OpenAI; the notice
// is in vocab/LICENSE), carried in the binary so that nothing has to be
// downloaded to tokenize.
//
//go:embed vocab/bpe_simple_vocab_16e6.txt.gz
var embeddedVocab []byte

// defaultTokenizer parses the embedded vocab once; the tokenizer is
// read-only afterwards, so every caller may share it.
var defaultTokenizer = sync.OnceValues(func() (*Tokenizer, error) {
	t, err := Read(bytes.NewReader(embeddedVocab))
	if err != nil {
		return nil, fmt.Errorf("the built-in CLIP vocab: %w", err)
	}
	return t, nil
})

// Default returns the tokenizer of CLIP's own vocab, built into madclip.
func Default() (*Tokenizer, error) { return defaultTokenizer() }

// DefaultVocab returns a copy of the built-in merges file (gzip-compressed),
// for writing it out beside weights or for tests.
func DefaultVocab() []byte { return append([]byte(nil), embeddedVocab...) }
