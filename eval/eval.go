// Package eval runs a model over a labelled data set in batches with the
// built-in interpreter and reports top-1 accuracy, mean cross-entropy and
// throughput: what `onnx-rebasin eval` and loss-barrier curves print.
package eval

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
)

// Dataset is a set of float32 inputs with optional integer labels. The
// inputs are either in memory (X) or read from an .npy file batch by batch
// when a pass needs them (Load), so that memory does not grow with the
// number of samples.
type Dataset struct {
	// X holds N samples in memory, or is nil when they are read from a
	// file; Shape[0] is N.
	X     []float32
	Shape []int
	// Y holds one class label per sample, or is nil.
	Y []int64

	file *npy.File // the samples when X is nil
	rows []int     // the samples' rows in X or file; nil: 0..N-1
}

// Load opens inputs in an .npy file and, if labelsPath is not empty,
// reads integer class labels from another. The inputs are read batch by
// batch when needed, from the file opened here: Close it when done.
// Inputs must be floating point (float16 and float64 are converted to
// float32): integer data such as raw uint8 pixels is an error rather than
// cast, since the model expects it preprocessed (the shipped test models:
// float32 pixels/255).
func Load(dataPath, labelsPath string) (*Dataset, error) {
	f, err := npy.Open(dataPath) // its errors name the file
	if err != nil {
		return nil, err
	}
	ds, err := fromFile(f, dataPath, labelsPath)
	if err != nil {
		f.Close()
		return nil, err
	}
	return ds, nil
}

func fromFile(f *npy.File, dataPath, labelsPath string) (*Dataset, error) {
	if f.DType != npy.Float32 && f.DType != npy.Float16 && f.DType != npy.Float64 {
		return nil, fmt.Errorf("%s: inputs of dtype %s are not converted: save them preprocessed as floats, as the model expects (for image models usually x.astype(np.float32) / 255)", dataPath, f.DType.Name())
	}
	if len(f.Shape) == 0 || f.Shape[0] == 0 {
		return nil, fmt.Errorf("%s: expected an array of samples, got shape %v", dataPath, f.Shape)
	}
	ds := &Dataset{Shape: f.Shape, file: f}
	if labelsPath == "" {
		return ds, nil
	}
	ya, err := npy.ReadFile(labelsPath)
	if err != nil {
		return nil, err
	}
	if ds.Y, err = ya.Int64(); err != nil {
		return nil, fmt.Errorf("%s: %w", labelsPath, err)
	}
	if len(ya.Shape) != 1 || ya.Shape[0] != f.Shape[0] {
		return nil, fmt.Errorf("%s: %d labels of shape %v for %d samples", labelsPath, len(ds.Y), ya.Shape, f.Shape[0])
	}
	return ds, nil
}

// Close closes the file the samples are read from (nothing for data in
// memory). Datasets derived by Head and Select share the file.
func (d *Dataset) Close() error {
	if d == nil || d.file == nil {
		return nil
	}
	return d.file.Close()
}

// N is the number of samples.
func (d *Dataset) N() int { return d.Shape[0] }

// sampleLen is the number of values of one sample.
func (d *Dataset) sampleLen() int {
	n := 1
	for _, v := range d.Shape[1:] {
		n *= v
	}
	return n
}

// Batch returns samples [from, to) as a tensor of its own memory (or
// sharing X's); a pass over the data should use a Reader, which reuses it.
func (d *Dataset) Batch(from, to int) (*infer.Tensor, error) {
	return d.NewReader().Batch(from, to)
}

// Reader reads batches of a Dataset into one buffer, reused from batch to
// batch: a tensor it returns is valid until its next Batch. It is not
// safe for concurrent use (a tensor it returned is, for reading).
type Reader struct {
	d   *Dataset
	buf []float32
}

// NewReader returns a Reader of d's samples.
func (d *Dataset) NewReader() *Reader { return &Reader{d: d} }

// Batch returns samples [from, to) as a tensor; errors (a file changed or
// cut short since it was opened) name the file.
func (r *Reader) Batch(from, to int) (*infer.Tensor, error) {
	d := r.d
	if from < 0 || to > d.N() || from > to {
		return nil, fmt.Errorf("samples %d-%d of %d", from, to-1, d.N())
	}
	per := d.sampleLen()
	shape := append([]int{to - from}, d.Shape[1:]...)
	if d.X != nil && d.rows == nil {
		return infer.NewFloat32(shape, d.X[from*per:to*per]), nil
	}
	n := (to - from) * per
	if cap(r.buf) < n {
		r.buf = make([]float32, n)
	}
	buf := r.buf[:n]
	// Runs of consecutive rows are read at once.
	for i := from; i < to; {
		row, j := d.row(i), i+1
		for j < to && d.row(j) == row+(j-i) {
			j++
		}
		dst := buf[(i-from)*per : (j-from)*per]
		if d.X != nil {
			copy(dst, d.X[row*per:])
		} else if err := d.file.ReadFloat32(dst, row*per); err != nil {
			return nil, err
		}
		i = j
	}
	return infer.NewFloat32(shape, buf), nil
}

// row is the row of sample i in X or the file.
func (d *Dataset) row(i int) int {
	if d.rows == nil {
		return i
	}
	return d.rows[i]
}

// Select returns the samples of d at the given indices, in order, sharing
// d's memory or file.
func (d *Dataset) Select(samples []int) *Dataset {
	s := &Dataset{X: d.X, Shape: append([]int{len(samples)}, d.Shape[1:]...), file: d.file, rows: make([]int, len(samples))}
	for k, i := range samples {
		s.rows[k] = d.row(i)
	}
	if d.Y != nil {
		s.Y = make([]int64, len(samples))
		for k, i := range samples {
			s.Y[k] = d.Y[i]
		}
	}
	return s
}

// Result is a model's score on a data set.
type Result struct {
	Samples    int     `json:"samples"`
	Accuracy   float64 `json:"accuracy,omitempty"` // top-1, when labels are given
	Loss       float64 `json:"loss,omitempty"`     // mean cross-entropy, when labels are given
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"samples_per_second"`
	HaveLabels bool    `json:"have_labels"`
}

// Run evaluates sess on d in batches of batch samples. The model must have
// one input and its first output must be logits of shape (N, classes).
// progress, if not nil, is called after each batch with the samples done.
func Run(sess *infer.Session, d *Dataset, batch int, progress func(done, total int)) (Result, error) {
	if batch <= 0 {
		return Result{}, errors.New("batch size must be positive")
	}
	ins, outs := sess.Inputs(), sess.Outputs()
	if len(ins) != 1 || len(outs) == 0 {
		return Result{}, fmt.Errorf("model has %d inputs and %d outputs; eval needs one input and a logits output", len(ins), len(outs))
	}
	start := time.Now()
	res := Result{Samples: d.N(), HaveLabels: d.Y != nil}
	var correct int
	var lossSum float64
	rd := d.NewReader()
	for from := 0; from < d.N(); from += batch {
		to := min(from+batch, d.N())
		x, err := rd.Batch(from, to)
		if err != nil {
			return Result{}, err
		}
		out, err := sess.Run(map[string]*infer.Tensor{ins[0].Name: x})
		if err != nil {
			return Result{}, fmt.Errorf("samples %d-%d: %w", from, to-1, err)
		}
		logits := out[outs[0].Name]
		if logits == nil || len(logits.Shape) != 2 || logits.Shape[0] != to-from {
			return Result{}, fmt.Errorf("output %s: expected logits of shape (%d, classes)", outs[0].Name, to-from)
		}
		if d.Y != nil {
			c, l, err := score(logits, d.Y[from:to])
			if err != nil {
				return Result{}, fmt.Errorf("samples %d-%d: %w", from, to-1, err)
			}
			correct += c
			lossSum += l
		}
		if progress != nil {
			progress(to, d.N())
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.PerSecond = float64(d.N()) / res.Seconds
	}
	if d.Y != nil {
		res.Accuracy = float64(correct) / float64(d.N())
		res.Loss = lossSum / float64(d.N())
	}
	return res, nil
}

// score counts correct top-1 predictions and sums the cross-entropy of the
// softmax of each row of logits against its label (in float64, with the
// log-sum-exp shifted by the row maximum).
func score(logits *infer.Tensor, labels []int64) (correct int, loss float64, err error) {
	classes := logits.Shape[1]
	for i, y := range labels {
		if y < 0 || int(y) >= classes {
			return 0, 0, fmt.Errorf("label %d out of range for %d classes", y, classes)
		}
		row := logits.F[i*classes : (i+1)*classes]
		best := 0
		mx := math.Inf(-1)
		for c, v := range row {
			if float64(v) > mx {
				mx = float64(v)
			}
			if v > row[best] {
				best = c
			}
		}
		if best == int(y) {
			correct++
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		loss += math.Log(sum) + mx - float64(row[y])
	}
	return correct, loss, nil
}

// Head returns the first n samples of d (all of them if n ≥ N), sharing
// memory or file.
func (d *Dataset) Head(n int) *Dataset {
	if n >= d.N() || n < 0 {
		return d
	}
	h := *d
	h.Shape = append([]int{n}, d.Shape[1:]...)
	if d.rows != nil {
		h.rows = d.rows[:n]
	}
	if d.Y != nil {
		h.Y = d.Y[:n]
	}
	return &h
}
