package infer

import (
	"fmt"
	"math"
	"sync"
)

func init() {
	for _, op := range []string{"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp"} {
		register(op, buildReduce)
	}
}

// buildReduce implements the Reduce* family on float32. Axes are an
// attribute until opset 13 (ReduceSum) or 18 (the others), an optional
// input after; with noop_with_empty_axes and no axes the input passes
// through unchanged.
func buildReduce(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 2); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	axesFrom := 18
	if b.op == "ReduceSum" {
		axesFrom = 13
	}
	keep := b.int("keepdims", 1) != 0
	noop := b.int("noop_with_empty_axes", 0) != 0
	op := b.op
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		axes, _, err := axesArg(b, axesFrom, 1, in)
		if err != nil {
			return nil, err
		}
		r := len(x.Shape)
		red := make([]bool, r)
		if len(axes) == 0 {
			if noop && b.opset >= axesFrom {
				return []*Tensor{x.Clone()}, nil
			}
			for i := range red {
				red[i] = true
			}
		}
		for _, a := range axes {
			ax, err := normAxis(a, r)
			if err != nil {
				return nil, err
			}
			red[ax] = true
		}
		kshape := make([]int, r) // output with kept dims
		var shape []int
		for i, d := range x.Shape {
			kshape[i] = d
			if red[i] {
				kshape[i] = 1
				if keep {
					shape = append(shape, 1)
				}
			} else {
				shape = append(shape, d)
			}
		}
		if shape == nil {
			shape = []int{}
		}
		n := numel(kshape)
		accp := getF64(n)
		defer f64Pool.Put(accp)
		acc := *accp
		init := 0.0
		switch op {
		case "ReduceMax":
			init = math.Inf(-1)
		case "ReduceMin":
			init = math.Inf(1)
		case "ReduceProd":
			init = 1
		}
		for i := range acc {
			acc[i] = init
		}
		if len(x.F) > 0 {
			// Walk x in runs; the output offset advances with the run (inc 1)
			// or stays (inc 0).
			bc := newBcast(x.Shape, x.Shape, kshape)
			bc.runs(0, bc.outer(), func(o int, off, inc []int, m int) {
				src := x.F[o : o+m]
				j, step := off[1], inc[1]
				for _, v := range src {
					f := float64(v)
					switch op {
					case "ReduceMax":
						if f > acc[j] || f != f {
							acc[j] = f
						}
					case "ReduceMin":
						if f < acc[j] || f != f {
							acc[j] = f
						}
					case "ReduceProd":
						acc[j] *= f
					case "ReduceSumSquare", "ReduceL2":
						acc[j] += f * f
					case "ReduceL1":
						acc[j] += math.Abs(f)
					case "ReduceLogSumExp":
						acc[j] += math.Exp(f)
					default:
						acc[j] += f
					}
					j += step
				}
			})
		}
		count := 1
		if n > 0 {
			count = len(x.F) / n
		}
		y := c.newF(shape)
		for i, v := range acc {
			switch op {
			case "ReduceMean":
				v /= float64(count)
			case "ReduceL2":
				v = math.Sqrt(v)
			case "ReduceLogSum", "ReduceLogSumExp":
				v = math.Log(v)
			}
			y.F[i] = float32(v)
		}
		if len(y.F) != n {
			return nil, fmt.Errorf("internal: reduce output size")
		}
		return []*Tensor{y}, nil
	}, nil
}

// f64Pool recycles float64 accumulators: fresh memory costs page faults
// on every run.
var f64Pool sync.Pool

// getF64 returns a pooled float64 slice of length n (contents undefined).
func getF64(n int) *[]float64 {
	p, _ := f64Pool.Get().(*[]float64)
	if p == nil || cap(*p) < n {
		s := make([]float64, n)
		return &s
	}
	*p = (*p)[:n]
	return p
}
