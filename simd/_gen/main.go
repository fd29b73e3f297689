// Command _gen writes simd's amd64 assembly (AVX2+FMA and AVX-512) with avo.
//
// It lives in its own module so that users of the simd package never
// download avo; run it through `go generate` in the simd directory:
//
//	cd _gen && go run . -out ../simd_amd64.s -stubs ../simd_amd64.go -pkg simd
//
// Everything here is straight-line code generation: the loops that pick
// tile sizes and registers run at generation time, so the emitted kernels
// contain no register indirection.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!noasm,!appengine,!gccgo")

	genDot()
	genDotF64()
	genAxpy()
	genScale()

	// GEMM micro-kernels. The shape (MR rows × NV vectors) must match the
	// microKernel values in dispatch_amd64.go.
	//
	// AVX2: 16 YMM registers = 12 accumulators (6 rows × 2 vectors) + 2 for
	// the B row + 2 broadcast registers, the classic 6×16 sgemm layout.
	genGemm("sgemmKernelAVX2", false, false, 6, 2, 4)
	genGemm("dgemmKernelAVX2", true, false, 6, 2, 4)
	// AVX-512: 32 ZMM registers = 28 accumulators (14 rows × 2 vectors) + 2
	// for the B row + 2 broadcast registers.
	genGemm("sgemmKernelAVX512", false, true, 14, 2, 4)
	genGemm("dgemmKernelAVX512", true, true, 14, 2, 4)

	Generate()
}

func mem(base Register, disp int) Mem { return Mem{Base: base, Disp: disp} }

// hsumPS leaves the horizontal sum of the 8 floats of y in the low lane of
// y's XMM half.
func hsumPS(y VecVirtual) {
	hi := XMM()
	x := y.AsX()
	VEXTRACTF128(U8(1), y, hi)
	VADDPS(hi, x, x)
	VHADDPS(x, x, x)
	VHADDPS(x, x, x)
}

func genDot() {
	TEXT("dotAVX2", NOSPLIT, "func(x, y []float32) float32")
	Pragma("noescape")
	Doc("dotAVX2 returns Σ x[i]*y[i] over i < len(x). The caller guarantees len(y) >= len(x).")
	x := Load(Param("x").Base(), GP64())
	y := Load(Param("y").Base(), GP64())
	n := Load(Param("x").Len(), GP64())

	// Four independent accumulators hide the 4-cycle FMA latency.
	acc := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	Label("dot_loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("dot_loop8"))
	for j := range acc {
		t := YMM()
		VMOVUPS(mem(x, 32*j), t)
		VFMADD231PS(mem(y, 32*j), t, acc[j])
	}
	ADDQ(U8(128), x)
	ADDQ(U8(128), y)
	SUBQ(U8(32), n)
	JMP(LabelRef("dot_loop32"))

	Label("dot_loop8")
	CMPQ(n, U8(8))
	JL(LabelRef("dot_reduce"))
	t := YMM()
	VMOVUPS(mem(x, 0), t)
	VFMADD231PS(mem(y, 0), t, acc[0])
	ADDQ(U8(32), x)
	ADDQ(U8(32), y)
	SUBQ(U8(8), n)
	JMP(LabelRef("dot_loop8"))

	Label("dot_reduce")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	hsumPS(acc[0])
	s := acc[0].AsX()

	Label("dot_loop1")
	TESTQ(n, n)
	JZ(LabelRef("dot_done"))
	t1 := XMM()
	VMOVSS(mem(x, 0), t1)
	VFMADD231SS(mem(y, 0), t1, s)
	ADDQ(U8(4), x)
	ADDQ(U8(4), y)
	DECQ(n)
	JMP(LabelRef("dot_loop1"))

	Label("dot_done")
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

func genDotF64() {
	TEXT("dotF64AVX2", NOSPLIT, "func(x, y []float32) float64")
	Pragma("noescape")
	Doc("dotF64AVX2 returns Σ float64(x[i])*float64(y[i]) over i < len(x), accumulated in float64.",
		"The caller guarantees len(y) >= len(x).")
	x := Load(Param("x").Base(), GP64())
	y := Load(Param("y").Base(), GP64())
	n := Load(Param("x").Len(), GP64())

	acc := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range acc {
		VXORPD(a, a, a)
	}
	Label("dotf64_loop16")
	CMPQ(n, U8(16))
	JL(LabelRef("dotf64_loop4"))
	for j := range acc {
		tx, ty := YMM(), YMM()
		VCVTPS2PD(mem(x, 16*j), tx)
		VCVTPS2PD(mem(y, 16*j), ty)
		VFMADD231PD(ty, tx, acc[j])
	}
	ADDQ(U8(64), x)
	ADDQ(U8(64), y)
	SUBQ(U8(16), n)
	JMP(LabelRef("dotf64_loop16"))

	Label("dotf64_loop4")
	CMPQ(n, U8(4))
	JL(LabelRef("dotf64_reduce"))
	tx, ty := YMM(), YMM()
	VCVTPS2PD(mem(x, 0), tx)
	VCVTPS2PD(mem(y, 0), ty)
	VFMADD231PD(ty, tx, acc[0])
	ADDQ(U8(16), x)
	ADDQ(U8(16), y)
	SUBQ(U8(4), n)
	JMP(LabelRef("dotf64_loop4"))

	Label("dotf64_reduce")
	VADDPD(acc[1], acc[0], acc[0])
	VADDPD(acc[3], acc[2], acc[2])
	VADDPD(acc[2], acc[0], acc[0])
	hi := XMM()
	s := acc[0].AsX()
	VEXTRACTF128(U8(1), acc[0], hi)
	VADDPD(hi, s, s)
	VHADDPD(s, s, s)

	Label("dotf64_loop1")
	TESTQ(n, n)
	JZ(LabelRef("dotf64_done"))
	sx, sy := XMM(), XMM()
	VCVTSS2SD(mem(x, 0), sx, sx)
	VCVTSS2SD(mem(y, 0), sy, sy)
	VFMADD231SD(sy, sx, s)
	ADDQ(U8(4), x)
	ADDQ(U8(4), y)
	DECQ(n)
	JMP(LabelRef("dotf64_loop1"))

	Label("dotf64_done")
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

func genAxpy() {
	TEXT("axpyAVX2", NOSPLIT, "func(alpha float32, x, y []float32)")
	Pragma("noescape")
	Doc("axpyAVX2 sets y[i] = alpha*x[i] + y[i] (one rounding, FMA) for i < len(x).",
		"The caller guarantees len(y) >= len(x).")
	a := Load(Param("alpha"), XMM())
	x := Load(Param("x").Base(), GP64())
	y := Load(Param("y").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	av := YMM()
	VBROADCASTSS(a, av)

	Label("axpy_loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("axpy_loop8"))
	ts := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for j, t := range ts {
		VMOVUPS(mem(x, 32*j), t)
		VFMADD213PS(mem(y, 32*j), av, t)
	}
	for j, t := range ts {
		VMOVUPS(t, mem(y, 32*j))
	}
	ADDQ(U8(128), x)
	ADDQ(U8(128), y)
	SUBQ(U8(32), n)
	JMP(LabelRef("axpy_loop32"))

	Label("axpy_loop8")
	CMPQ(n, U8(8))
	JL(LabelRef("axpy_loop1"))
	t := YMM()
	VMOVUPS(mem(x, 0), t)
	VFMADD213PS(mem(y, 0), av, t)
	VMOVUPS(t, mem(y, 0))
	ADDQ(U8(32), x)
	ADDQ(U8(32), y)
	SUBQ(U8(8), n)
	JMP(LabelRef("axpy_loop8"))

	Label("axpy_loop1")
	TESTQ(n, n)
	JZ(LabelRef("axpy_done"))
	t1 := XMM()
	VMOVSS(mem(x, 0), t1)
	VFMADD213SS(mem(y, 0), a, t1)
	VMOVSS(t1, mem(y, 0))
	ADDQ(U8(4), x)
	ADDQ(U8(4), y)
	DECQ(n)
	JMP(LabelRef("axpy_loop1"))

	Label("axpy_done")
	VZEROUPPER()
	RET()
}

func genScale() {
	TEXT("scaleAVX2", NOSPLIT, "func(alpha float32, x []float32)")
	Pragma("noescape")
	Doc("scaleAVX2 sets x[i] = alpha*x[i] for i < len(x).")
	a := Load(Param("alpha"), XMM())
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	av := YMM()
	VBROADCASTSS(a, av)

	Label("scale_loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("scale_loop8"))
	ts := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for j, t := range ts {
		VMULPS(mem(x, 32*j), av, t)
	}
	for j, t := range ts {
		VMOVUPS(t, mem(x, 32*j))
	}
	ADDQ(U8(128), x)
	SUBQ(U8(32), n)
	JMP(LabelRef("scale_loop32"))

	Label("scale_loop8")
	CMPQ(n, U8(8))
	JL(LabelRef("scale_loop1"))
	t := YMM()
	VMULPS(mem(x, 0), av, t)
	VMOVUPS(t, mem(x, 0))
	ADDQ(U8(32), x)
	SUBQ(U8(8), n)
	JMP(LabelRef("scale_loop8"))

	Label("scale_loop1")
	TESTQ(n, n)
	JZ(LabelRef("scale_done"))
	t1 := XMM()
	VMULSS(mem(x, 0), a, t1)
	VMOVSS(t1, mem(x, 0))
	ADDQ(U8(4), x)
	DECQ(n)
	JMP(LabelRef("scale_loop1"))

	Label("scale_done")
	VZEROUPPER()
	RET()
}

var (
	ymms = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}
	zmms = []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
		Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}
)

// genGemm emits a register-blocked GEMM micro-kernel
//
//	func name(k int, a, b, c []T, ldc int, alpha T)
//
// computing, for i < mr and j < nr (nr = nv vectors),
//
//	c[i*ldc+j] = alpha*acc[i][j] + c[i*ldc+j]   (one FMA)
//	acc[i][j]  = Σ_{p<k} a[p*mr+i] * b[p*nr+j]  (sequential FMAs from 0)
//
// where a and b are packed panels. Each accumulator lane is an independent
// FMA chain in increasing p, so every implementation (AVX2, AVX-512, NEON)
// produces the same bits for the same k-blocking.
//
// Per k step: nv aligned vector loads of the B row, then for each of the mr
// rows one broadcast of a[p*mr+i] and nv FMAs. The k loop is unrolled
// `unroll` times with a remainder loop.
func genGemm(name string, f64, zmm bool, mr, nv, unroll int) {
	es := 4
	typ := "float32"
	if f64 {
		es = 8
		typ = "float64"
	}
	regs := ymms
	vbytes := 32
	if zmm {
		regs = zmms
		vbytes = 64
	}
	vl := vbytes / es
	nr := nv * vl
	if mr*nv+nv+2 > len(regs) {
		panic(fmt.Sprintf("%s: %d×%d does not fit the register file", name, mr, nv))
	}
	acc := regs[:mr*nv]
	bv := regs[mr*nv : mr*nv+nv]
	bc := regs[mr*nv+nv : mr*nv+nv+2]

	bcast := func(m Mem, r VecPhysical) {
		if f64 {
			VBROADCASTSD(m, r)
		} else {
			VBROADCASTSS(m, r)
		}
	}
	fma231 := func(x, y, z Op) {
		if f64 {
			VFMADD231PD(x, y, z)
		} else {
			VFMADD231PS(x, y, z)
		}
	}
	fma213 := func(x, y, z Op) {
		if f64 {
			VFMADD213PD(x, y, z)
		} else {
			VFMADD213PS(x, y, z)
		}
	}
	zero := func(r VecPhysical) {
		if zmm {
			VPXORD(r, r, r) // VXORPS on ZMM would need AVX512DQ.
		} else {
			VXORPS(r, r, r)
		}
	}

	TEXT(name, NOSPLIT, fmt.Sprintf("func(k int, a, b, c []%s, ldc int, alpha %s)", typ, typ))
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the %d×%d micro-kernel: c[i*ldc+j] = alpha*Σ_p a[p*%d+i]*b[p*%d+j] + c[i*ldc+j].", name, mr, nr, mr, nr),
		"k >= 1; a, b and c must hold the whole tile (checked by the Go driver, not here).")

	k, pa, pb, pc, ldc := RCX, RSI, RDI, RDX, R8
	Load(Param("k"), k)
	Load(Param("a").Base(), pa)
	Load(Param("b").Base(), pb)
	Load(Param("c").Base(), pc)
	Load(Param("ldc"), ldc)
	SHLQ(U8(map[int]uint8{4: 2, 8: 3}[es]), ldc) // ldc in bytes

	for _, r := range acc {
		zero(r)
	}

	step := func(p int) {
		for v := 0; v < nv; v++ {
			VMOVUPS(mem(pb, (p*nr+v*vl)*es), bv[v])
		}
		for i := 0; i < mr; i++ {
			r := bc[i%2]
			bcast(mem(pa, (p*mr+i)*es), r)
			for v := 0; v < nv; v++ {
				fma231(bv[v], r, acc[i*nv+v])
			}
		}
	}

	lbl := func(s string) string { return name + "_" + s }
	Label(lbl("loop"))
	CMPQ(k, U8(unroll))
	JL(LabelRef(lbl("tail")))
	for p := 0; p < unroll; p++ {
		step(p)
	}
	ADDQ(U32(unroll*mr*es), pa)
	ADDQ(U32(unroll*nr*es), pb)
	SUBQ(U8(unroll), k)
	JMP(LabelRef(lbl("loop")))

	Label(lbl("tail"))
	TESTQ(k, k)
	JZ(LabelRef(lbl("store")))
	step(0)
	ADDQ(U32(mr*es), pa)
	ADDQ(U32(nr*es), pb)
	DECQ(k)
	JMP(LabelRef(lbl("tail")))

	Label(lbl("store"))
	alpha, err := Param("alpha").Resolve()
	if err != nil {
		panic(err)
	}
	bcast(alpha.Addr, bv[0])
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			r := acc[i*nv+v]
			fma213(mem(pc, v*vbytes), bv[0], r)
			VMOVUPS(r, mem(pc, v*vbytes))
		}
		if i < mr-1 {
			ADDQ(ldc, pc)
		}
	}
	VZEROUPPER()
	RET()
}
