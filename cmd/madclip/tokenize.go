package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"madclip/model/clip/bpe"
	"madclip/weights"
)

func vocabFlag() cli.Flag {
	return &cli.StringFlag{Name: "vocab", Usage: "CLIP's bpe_simple_vocab_16e6.txt.gz (default: found where the weights live)"}
}

// loadTokenizer loads the vocab given by --vocab or found in the weights folders.
func loadTokenizer(c *cli.Context) (*bpe.Tokenizer, error) {
	path, err := weights.FindVocab(c.String("vocab"))
	if err != nil {
		return nil, err
	}
	return bpe.Load(path)
}

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "tokenize",
		Usage:     "print CLIP token ids of texts",
		ArgsUsage: "TEXT...",
		Description: `Prints, for each TEXT, one line of space-separated CLIP token ids, the start
(49406) and end (49407) tokens included, without padding.

Examples:
  madclip tokenize "a photo of a cat"
  madclip tokenize --vocab bpe_simple_vocab_16e6.txt.gz "damaged Brain" "flawless Brain"`,
		Flags: []cli.Flag{vocabFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("tokenize: give at least one TEXT (see madclip tokenize --help)")
			}
			tk, err := loadTokenizer(c)
			if err != nil {
				return err
			}
			for _, text := range c.Args().Slice() {
				ids := tk.EncodeWithSpecials(text)
				parts := make([]string, len(ids))
				for i, id := range ids {
					parts[i] = strconv.Itoa(id)
				}
				fmt.Fprintln(c.App.Writer, strings.Join(parts, " "))
			}
			return nil
		},
	}
}
