package lap_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

// scipyCases is testdata/scipy.json, written by bench/lap/make_testdata.py.
type scipyCases struct {
	ScipyVersion string `json:"scipy_version"`
	Cases        []struct {
		Name       string    `json:"name"`
		N          int       `json:"n"`
		Exact      bool      `json:"exact"`
		Cost       []float64 `json:"cost"`
		ScipyTotal float64   `json:"scipy_total"`
		ScipyPerm  []int     `json:"scipy_perm"`
	} `json:"cases"`
}

func TestAgainstScipy(t *testing.T) {
	buf, err := os.ReadFile("testdata/scipy.json")
	if err != nil {
		t.Fatal(err)
	}
	var data scipyCases
	if err := json.Unmarshal(buf, &data); err != nil {
		t.Fatal(err)
	}
	if len(data.Cases) == 0 {
		t.Fatal("no cases")
	}
	var s lap.Solver
	for _, c := range data.Cases {
		t.Run(c.Name, func(t *testing.T) {
			n := c.N
			// The file must be what scipy said: its perm sums to its total.
			if got := laptest.Total(n, c.Cost, c.ScipyPerm); got != c.ScipyTotal {
				t.Fatalf("testdata inconsistent: scipy perm sums to %v, file says %v", got, c.ScipyTotal)
			}
			perm, total, err := s.Solve(n, c.Cost)
			if err != nil {
				t.Fatal(err)
			}
			checkSolution(t, &s, n, c.Cost, perm, total, c.ScipyTotal, c.Exact)
			// A warm start from scipy's own answer must agree too.
			perm, total, err = s.SolveWarm(n, c.Cost, c.ScipyPerm, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkSolution(t, &s, n, c.Cost, perm, total, c.ScipyTotal, c.Exact)
		})
	}
	t.Logf("%d cases from scipy %s", len(data.Cases), data.ScipyVersion)
}
