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
	genTranspose()

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
//	func name(k int, a, b, c []T, ldc int, alpha, beta T)
//
// computing, for i < mr and j < nr (nr = nv vectors),
//
//	c[i*ldc+j] = alpha*acc[i][j] + beta*c[i*ldc+j]  (see the epilogue)
//	acc[i][j]  = Σ_{p<k} a[p*mr+i] * b[p*nr+j]      (sequential FMAs from 0)
//
// where a and b are packed panels. Each accumulator lane is an independent
// FMA chain in increasing p, so every implementation (AVX2, AVX-512, NEON)
// produces the same bits for the same k-blocking.
//
// Per k step: nv aligned vector loads of the B row, then for each of the mr
// rows one broadcast of a[p*mr+i] and nv FMAs. The k loop is unrolled
// `unroll` times with a remainder loop.
// pfLabel numbers the labels of the C-prefetch blocks. (Software prefetch
// of the packed A and B streams was tried too: the hardware prefetchers
// already keep up with them, and it gained nothing.)
var pfLabel int

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

	TEXT(name, NOSPLIT, fmt.Sprintf("func(k int, a, b, c []%s, ldc int, alpha, beta %s)", typ, typ))
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the %d×%d micro-kernel: c[i*ldc+j] = alpha*Σ_p a[p*%d+i]*b[p*%d+j] + beta*c[i*ldc+j].", name, mr, nr, mr, nr),
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

	// Prefetch the C tile: it is read and written once per call, after
	// the k loop, and usually comes from L3 or memory. One row per trip
	// of the unrolled loop, so that the prefetches overlap the FMAs
	// without filling the miss queue ahead of the A and B loads.
	lbl := func(s string) string { return name + "_" + s }
	pf, pfRows := R9, R11
	MOVQ(pc, pf)
	MOVQ(U32(mr), pfRows)
	prefetchCRow := func() {
		skip := lbl(fmt.Sprintf("pfc%d", pfLabel))
		pfLabel++
		TESTQ(pfRows, pfRows)
		JZ(LabelRef(skip))
		for off := 0; off < nr*es; off += 64 {
			PREFETCHT0(mem(pf, off))
		}
		PREFETCHT0(mem(pf, nr*es-1)) // the row may straddle one more line
		ADDQ(ldc, pf)
		DECQ(pfRows)
		Label(skip)
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

	Label(lbl("loop"))
	CMPQ(k, U8(unroll))
	JL(LabelRef(lbl("tail")))
	prefetchCRow()
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

	// Epilogue: c = alpha*acc + beta*c, in one of three forms chosen on
	// beta's bits (beta == ±0: C is not read, as in BLAS; beta == 1:
	// one FMA; otherwise c is scaled first, exactly like Scale would).
	Label(lbl("store"))
	alpha, err := Param("alpha").Resolve()
	if err != nil {
		panic(err)
	}
	beta, err := Param("beta").Resolve()
	if err != nil {
		panic(err)
	}
	bcast(alpha.Addr, bv[0])
	bits := R10
	if f64 {
		MOVQ(beta.Addr, bits)
		MOVQ(bits, R11)
		SHLQ(U8(1), R11) // drop the sign: -0 counts as 0
		JZ(LabelRef(lbl("beta0")))
		MOVQ(U64(0x3ff0000000000000), R11)
		CMPQ(bits, R11)
		JE(LabelRef(lbl("beta1")))
	} else {
		MOVL(beta.Addr, bits.As32())
		TESTL(U32(0x7fffffff), bits.As32())
		JZ(LabelRef(lbl("beta0")))
		CMPL(bits.As32(), U32(0x3f800000))
		JE(LabelRef(lbl("beta1")))
	}
	epilogue := func(label string, combine func(cm Mem, r VecPhysical)) {
		Label(lbl(label))
		for i := 0; i < mr; i++ {
			for v := 0; v < nv; v++ {
				r := acc[i*nv+v]
				cm := mem(pc, v*vbytes)
				combine(cm, r)
				VMOVUPS(r, cm)
			}
			if i < mr-1 {
				ADDQ(ldc, pc)
			}
		}
		VZEROUPPER()
		RET()
	}
	// General beta.
	bcast(beta.Addr, bv[1])
	epilogue("betaN", func(cm Mem, r VecPhysical) {
		if f64 {
			VMULPD(cm, bv[1], bc[0])
		} else {
			VMULPS(cm, bv[1], bc[0])
		}
		fma213(bc[0], bv[0], r)
	})
	epilogue("beta1", func(cm Mem, r VecPhysical) {
		fma213(cm, bv[0], r)
	})
	Label(lbl("beta0"))
	zero(bc[1])
	epilogue("beta0_store", func(cm Mem, r VecPhysical) {
		fma213(bc[1], bv[0], r) // alpha*acc + 0: the bits of the other forms with c = 0
	})
}

// genTranspose emits the packing transpose
//
//	func transposeAVX(dst, src []float32, ld, rows, k, stride int)
//
// setting dst[p*stride+r] = src[r*ld+p] for r < rows, p < k: packing A
// (untransposed) and Bᵀ are transposes, and in Go they cost as much as a
// good part of the multiplication. Rows go four at a time through a 4×4
// in-register transpose (four 16-byte loads and stores per 16 elements),
// then two, then one.
func genTranspose() {
	TEXT("transposeAVX", NOSPLIT, "func(dst, src []float32, ld, rows, k, stride int)")
	Pragma("noescape")
	Doc("transposeAVX sets dst[p*stride+r] = src[r*ld+p] for r < rows and p < k.",
		"The Go caller checks that both slices are long enough.")
	dst := Load(Param("dst").Base(), GP64())
	src := Load(Param("src").Base(), GP64())
	ld := Load(Param("ld"), GP64())
	rows := Load(Param("rows"), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(U8(2), ld)
	SHLQ(U8(2), stride)
	stride3 := GP64()
	LEAQ(Mem{Base: stride, Index: stride, Scale: 2}, stride3)

	// rowGroup transposes g rows starting at src/dst, k columns.
	rowGroup := func(g int, name string) {
		s := []GPVirtual{GP64(), GP64(), GP64(), GP64()}[:g]
		MOVQ(src, s[0])
		for i := 1; i < g; i++ {
			LEAQ(Mem{Base: s[i-1], Index: ld, Scale: 1}, s[i])
		}
		d := GP64()
		MOVQ(dst, d)
		p := Load(Param("k"), GP64())
		x := []VecVirtual{XMM(), XMM(), XMM(), XMM()}
		Label(name + "_loop4")
		CMPQ(p, U8(4))
		JL(LabelRef(name + "_tail"))
		for i := 0; i < g; i++ {
			VMOVUPS(mem(s[i], 0), x[i])
		}
		switch g {
		case 4:
			t := []VecVirtual{XMM(), XMM(), XMM(), XMM()}
			VUNPCKLPS(x[1], x[0], t[0]) // a0 b0 a1 b1
			VUNPCKHPS(x[1], x[0], t[1]) // a2 b2 a3 b3
			VUNPCKLPS(x[3], x[2], t[2]) // c0 d0 c1 d1
			VUNPCKHPS(x[3], x[2], t[3]) // c2 d2 c3 d3
			VUNPCKLPD(t[2], t[0], x[0]) // a0 b0 c0 d0
			VUNPCKHPD(t[2], t[0], x[1]) // a1 b1 c1 d1
			VUNPCKLPD(t[3], t[1], x[2]) // a2 b2 c2 d2
			VUNPCKHPD(t[3], t[1], x[3]) // a3 b3 c3 d3
			VMOVUPS(x[0], mem(d, 0))
			VMOVUPS(x[1], Mem{Base: d, Index: stride, Scale: 1})
			VMOVUPS(x[2], Mem{Base: d, Index: stride, Scale: 2})
			VMOVUPS(x[3], Mem{Base: d, Index: stride3, Scale: 1})
		case 2:
			t0, t1 := XMM(), XMM()
			VUNPCKLPS(x[1], x[0], t0) // a0 b0 a1 b1
			VUNPCKHPS(x[1], x[0], t1) // a2 b2 a3 b3
			VMOVLPS(t0, mem(d, 0))
			VMOVHPS(t0, Mem{Base: d, Index: stride, Scale: 1})
			VMOVLPS(t1, Mem{Base: d, Index: stride, Scale: 2})
			VMOVHPS(t1, Mem{Base: d, Index: stride3, Scale: 1})
		case 1:
			VMOVSS(x[0], mem(d, 0))
			VEXTRACTPS(U8(1), x[0], Mem{Base: d, Index: stride, Scale: 1})
			VEXTRACTPS(U8(2), x[0], Mem{Base: d, Index: stride, Scale: 2})
			VEXTRACTPS(U8(3), x[0], Mem{Base: d, Index: stride3, Scale: 1})
		}
		for i := 0; i < g; i++ {
			ADDQ(U8(16), s[i])
		}
		LEAQ(Mem{Base: d, Index: stride, Scale: 4}, d)
		SUBQ(U8(4), p)
		JMP(LabelRef(name + "_loop4"))

		Label(name + "_tail")
		TESTQ(p, p)
		JZ(LabelRef(name + "_done"))
		for i := 0; i < g; i++ {
			VMOVSS(mem(s[i], 0), x[i])
			VMOVSS(x[i], mem(d, 4*i))
			ADDQ(U8(4), s[i])
		}
		ADDQ(stride, d)
		DECQ(p)
		JMP(LabelRef(name + "_tail"))
		Label(name + "_done")
	}

	// Groups of four rows, then a pair, then a single row.
	Label("tr_rows4")
	CMPQ(rows, U8(4))
	JL(LabelRef("tr_rows2"))
	rowGroup(4, "tr_g4")
	LEAQ(Mem{Base: src, Index: ld, Scale: 4}, src)
	ADDQ(U8(16), dst)
	SUBQ(U8(4), rows)
	JMP(LabelRef("tr_rows4"))

	Label("tr_rows2")
	CMPQ(rows, U8(2))
	JL(LabelRef("tr_rows1"))
	rowGroup(2, "tr_g2")
	LEAQ(Mem{Base: src, Index: ld, Scale: 2}, src)
	ADDQ(U8(8), dst)
	SUBQ(U8(2), rows)

	Label("tr_rows1")
	TESTQ(rows, rows)
	JZ(LabelRef("tr_done"))
	rowGroup(1, "tr_g1")

	Label("tr_done")
	RET()
}
