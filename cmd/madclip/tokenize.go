package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"madclip/model/clip/bpe"
)

func vocabFlag() cli.Flag {
	return &cli.StringFlag{Name: "vocab", Usage: "a CLIP BPE merges file (bpe_simple_vocab_16e6.txt.gz) instead of the built-in one"}
}

// loadTokenizer loads the vocab given by --vocab, else CLIP's own, built in.
func loadTokenizer(c *cli.Context) (*bpe.Tokenizer, error) {
	if path := c.String("vocab"); path != "" {
		return bpe.Load(path)
	}
	return bpe.Default()
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
