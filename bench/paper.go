package bench

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// The paper's published numbers (AUC %): Table 1 (16 shots), Table 2 (2, 4
// and 8 shots), Table 3 (cross-dataset) and the ablation drops, as
// paper_tables.json transcribes them from the paper.
//
//go:embed paper_tables.json
var paperJSON []byte

type paperTables struct {
	Table1 map[string]map[string]*float64            `json:"table1_16shot"`
	Table2 map[string]map[string]map[string]*float64 `json:"table2_by_shots"`
	Table3 struct {
		Columns []string  `json:"columns"`
		MadCLIP []float64 `json:"MadCLIP"`
	} `json:"table3_cross_dataset"`
}

// paper parses the embedded tables once; they are read-only afterwards.
var paper = sync.OnceValues(func() (*paperTables, error) {
	var p paperTables
	if err := json.Unmarshal(paperJSON, &p); err != nil {
		return nil, fmt.Errorf("the built-in paper tables: %w", err)
	}
	return &p, nil
})

// PaperAUC returns MadCLIP's published AUC (%) for a dataset with k shots:
// image-level (kind "AC") or pixel-level ("AS"); ok is false where the paper
// has no number.
func PaperAUC(dataset string, k int, kind string) (float64, bool) {
	p, err := paper()
	if err != nil {
		return 0, false
	}
	var row map[string]*float64
	if k == 16 {
		row = p.Table1["MadCLIP"]
	} else {
		row = p.Table2[strconv.Itoa(k)]["MadCLIP"]
	}
	v := row[dataset+"."+kind]
	if v == nil {
		return 0, false
	}
	return *v, true
}

// PaperCrossAUC returns MadCLIP's published image-level AUC (%) for
// training on 16 shots of train and testing on test (Table 3: Chest →
// NIHChest and CheXpert, Brain → ADNI, Retina_OCT2017 and Retina_RESC →
// OCTDL).
func PaperCrossAUC(train, test string) (float64, bool) {
	p, err := paper()
	if err != nil {
		return 0, false
	}
	for i, c := range p.Table3.Columns {
		if a, b, ok := strings.Cut(c, "->"); ok && a == train && b == test && i < len(p.Table3.MadCLIP) {
			return p.Table3.MadCLIP[i], true
		}
	}
	return 0, false
}

// CrossTargets lists Table 3's settings as TRAIN:TEST pairs.
func CrossTargets() []string {
	p, err := paper()
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range p.Table3.Columns {
		if a, b, ok := strings.Cut(c, "->"); ok {
			out = append(out, a+":"+b)
		}
	}
	return out
}
