package ortref

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/npy"
)

// Diff summarises an element-wise comparison made by AllClose.
type Diff struct {
	// GotLen and WantLen are the lengths compared; they differ only when
	// the comparison failed for that reason.
	GotLen, WantLen int
	// Bad counts elements outside tolerance.
	Bad int
	// MaxAbsErr is the largest |got-want| over elements where both are
	// finite (NaN and infinity mismatches are counted in Bad only).
	MaxAbsErr float64
	// Worst is the index of the element with the largest
	// |got-want| - (atol + rtol*|want|): the one furthest outside its
	// tolerance, or, if all are within, closest to leaving it. It is -1
	// when there are no elements or the lengths differ.
	Worst int
	// Got and Want are the values at Worst.
	Got, Want float64
	// Atol and Rtol are the tolerances used.
	Atol, Rtol float64
}

// String describes the comparison, e.g. "2 of 6 elements differ beyond
// atol=0.1 rtol=0: worst [3] got 1.5 want 1.25 (|diff| 0.25 > tol 0.1);
// max |diff| 0.25".
func (d Diff) String() string {
	if d.GotLen != d.WantLen {
		return fmt.Sprintf("length mismatch: got %d elements, want %d", d.GotLen, d.WantLen)
	}
	if d.Worst < 0 {
		return "no elements"
	}
	tol := d.Atol + d.Rtol*math.Abs(d.Want)
	if d.Bad == 0 {
		return fmt.Sprintf("all %d elements within atol=%g rtol=%g; max |diff| %g at [%d] (got %g want %g)",
			d.GotLen, d.Atol, d.Rtol, d.MaxAbsErr, d.Worst, d.Got, d.Want)
	}
	return fmt.Sprintf("%d of %d elements differ beyond atol=%g rtol=%g: worst [%d] got %g want %g (|diff| %g > tol %g); max |diff| %g",
		d.Bad, d.GotLen, d.Atol, d.Rtol, d.Worst, d.Got, d.Want, math.Abs(d.Got-d.Want), tol, d.MaxAbsErr)
}

// AllClose compares got with want element by element, like
// numpy.allclose(got, want, rtol, atol, equal_nan=True): each element must
// satisfy |got-want| <= atol + rtol*|want|. NaNs match NaNs; infinities
// match only the same infinity. ok is false if lengths differ or any
// element is out of tolerance; the Diff reports the worst element.
func AllClose(got, want []float32, atol, rtol float64) (d Diff, ok bool) {
	return allClose(len(got), len(want), func(i int) (float64, float64) {
		return float64(got[i]), float64(want[i])
	}, atol, rtol)
}

// AllClose64 is AllClose for float64 slices.
func AllClose64(got, want []float64, atol, rtol float64) (d Diff, ok bool) {
	return allClose(len(got), len(want), func(i int) (float64, float64) {
		return got[i], want[i]
	}, atol, rtol)
}

func allClose(ng, nw int, at func(int) (float64, float64), atol, rtol float64) (Diff, bool) {
	d := Diff{GotLen: ng, WantLen: nw, Worst: -1, Atol: atol, Rtol: rtol}
	if ng != nw {
		return d, false
	}
	worstScore := math.Inf(-1)
	for i := 0; i < ng; i++ {
		g, w := at(i)
		var score float64 // how far outside tolerance; <= 0 is within
		switch {
		case g == w || (math.IsNaN(g) && math.IsNaN(w)):
			score = -(atol + rtol*math.Abs(w))
			if math.IsInf(w, 0) || math.IsNaN(w) {
				score = math.Inf(-1) // exact non-finite match
			}
		case math.IsNaN(g) || math.IsNaN(w) || math.IsInf(g, 0) || math.IsInf(w, 0):
			score = math.Inf(1)
		default:
			e := math.Abs(g - w)
			d.MaxAbsErr = math.Max(d.MaxAbsErr, e)
			score = e - (atol + rtol*math.Abs(w))
		}
		if score > 0 {
			d.Bad++
		}
		if d.Worst < 0 || score > worstScore {
			worstScore, d.Worst, d.Got, d.Want = score, i, g, w
		}
	}
	return d, d.Bad == 0
}

// CheckClose compares two arrays: shapes must be equal and values close as
// in AllClose (after conversion to float64, so integer arrays compare
// exactly when both tolerances are 0). The dtypes may differ. It returns nil
// or an error describing the mismatch.
func CheckClose(got, want *npy.Array, atol, rtol float64) error {
	if got == nil || want == nil {
		return fmt.Errorf("missing array (got %v, want %v)", got, want)
	}
	if !reflect.DeepEqual(normShape(got.Shape), normShape(want.Shape)) {
		return fmt.Errorf("shape mismatch: got %v, want %v", got.Shape, want.Shape)
	}
	g, err := got.Float64()
	if err != nil {
		return err
	}
	w, err := want.Float64()
	if err != nil {
		return err
	}
	if d, ok := AllClose64(g, w, atol, rtol); !ok {
		return fmt.Errorf("%s", d)
	}
	return nil
}

func normShape(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// CompareModels runs models a and b on the same inputs and checks that
// every output of a exists in b with the same shape and values within
// tolerance (see CheckClose). It is the usual test that a rewritten model b
// computes what the original a computed.
func (r *Runner) CompareModels(a, b string, inputs map[string]*npy.Array, atol, rtol float64) error {
	outA, err := r.Run(a, inputs)
	if err != nil {
		return err
	}
	outB, err := r.Run(b, inputs)
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(outA))
	var errs []string
	for _, name := range names {
		vb, ok := outB[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("output %q: missing from %s", name, b))
			continue
		}
		if err := CheckClose(vb, outA[name], atol, rtol); err != nil {
			errs = append(errs, fmt.Sprintf("output %q: %v", name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ortref: %s and %s differ:\n%s", a, b, strings.Join(errs, "\n"))
	}
	return nil
}
