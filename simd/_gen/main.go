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
	"math"
	"strings"

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
	genScaleShift()
	genTranspose(false)
	genTranspose(true)
	genSumSqF64()

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

	// Strided-B float32 kernels for GemmPackedA (B read in place, row
	// stride ldb, as implicit-GEMM convolution needs). The same FMA chains
	// as the packed kernels, so the same bits. The AVX-512 8×32 shape
	// (16 accumulators) wastes no rows on the 16/32/64-channel
	// convolutions that 14 rows fit badly (16 channels would run 28 rows).
	genGemmStrided("sgemmStridedAVX2", false, 6, 2, 4)
	genGemmStrided("sgemmStridedAVX512", true, 14, 2, 4)
	genGemmStrided("sgemmStridedAVX512x8", true, 8, 2, 4)
	genGemmIndirect("sgemmIndirectAVX2", false, 6, 2, 4)
	genGemmIndirect("sgemmIndirectAVX512", true, 14, 2, 4)
	genGemmIndirect("sgemmIndirectAVX512x8", true, 8, 2, 4)

	genRelu()
	genMaxPool2x2()
	genMaxPool2x2Rows()
	genExp()
	genErf()
	genPause()
	genCopyRows()
	genCopyRowsEven()
	genGemmSmall("sgemmSmallAVX2", false)
	genGemmSmall("sgemmSmallAddAVX2", true)
	for _, op := range []string{"Add", "Sub", "Mul", "Div"} {
		genBinary(op)
	}

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
	s := reducePD(acc)

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

// reducePD sums the four YMM accumulators of float64 lanes, (0+1)+(2+3),
// then the lanes, and returns the XMM register whose low lane holds the sum
// (dotF64AVX2's order, which sumSqF64AVX2 must repeat bit for bit).
func reducePD(acc []VecVirtual) Register {
	VADDPD(acc[1], acc[0], acc[0])
	VADDPD(acc[3], acc[2], acc[2])
	VADDPD(acc[2], acc[0], acc[0])
	hi := XMM()
	s := acc[0].AsX()
	VEXTRACTF128(U8(1), acc[0], hi)
	VADDPD(hi, s, s)
	VHADDPD(s, s, s)
	return s
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
	elementwise("axpy", x, y, n,
		func(t VecVirtual, off int) {
			VMOVUPS(mem(x, off), t)
			VFMADD213PS(mem(y, off), av, t)
		},
		func(t VecVirtual) {
			VMOVSS(mem(x, 0), t)
			VFMADD213SS(mem(y, 0), a, t)
		})
}

// elementwise emits the loops of a kernel that writes dst[i] from src[i]
// (and dst[i]) for i < n: 32 floats at a time, then 8, then one. vec sets
// t to the 8 results at byte offset off from src and dst, scalar the one
// result at their start; elementwise stores them and advances both
// pointers. Labels start with prefix.
func elementwise(prefix string, src, dst, n Register, vec func(t VecVirtual, off int), scalar func(t VecVirtual)) {
	Label(prefix + "_loop32")
	CMPQ(n, U8(32))
	JL(LabelRef(prefix + "_loop8"))
	ts := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for j, t := range ts {
		vec(t, 32*j)
	}
	for j, t := range ts {
		VMOVUPS(t, mem(dst, 32*j))
	}
	ADDQ(U8(128), src)
	ADDQ(U8(128), dst)
	SUBQ(U8(32), n)
	JMP(LabelRef(prefix + "_loop32"))

	Label(prefix + "_loop8")
	CMPQ(n, U8(8))
	JL(LabelRef(prefix + "_loop1"))
	t := YMM()
	vec(t, 0)
	VMOVUPS(t, mem(dst, 0))
	ADDQ(U8(32), src)
	ADDQ(U8(32), dst)
	SUBQ(U8(8), n)
	JMP(LabelRef(prefix + "_loop8"))

	Label(prefix + "_loop1")
	TESTQ(n, n)
	JZ(LabelRef(prefix + "_done"))
	t1 := XMM()
	scalar(t1)
	VMOVSS(t1, mem(dst, 0))
	ADDQ(U8(4), src)
	ADDQ(U8(4), dst)
	DECQ(n)
	JMP(LabelRef(prefix + "_loop1"))

	Label(prefix + "_done")
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

// genScaleShift emits scaleShiftAVX2(dst, src []float32, a, b float32):
// dst[i] = src[i]*a + b with the product rounded before the sum (VMULPS then
// VADDPS, no FMA), as the Go loop computes it.
func genScaleShift() {
	TEXT("scaleShiftAVX2", NOSPLIT, "func(dst, src []float32, a, b float32)")
	Pragma("noescape")
	Doc("scaleShiftAVX2 sets dst[i] = src[i]*a + b (product rounded, then the sum) for i < len(src).")
	dst := Load(Param("dst").Base(), GP64())
	src := Load(Param("src").Base(), GP64())
	n := Load(Param("src").Len(), GP64())
	a := Load(Param("a"), XMM())
	b := Load(Param("b"), XMM())
	av, bv := YMM(), YMM()
	VBROADCASTSS(a, av)
	VBROADCASTSS(b, bv)
	elementwise("scaleshift", src, dst, n,
		func(t VecVirtual, off int) {
			VMULPS(mem(src, off), av, t)
			VADDPS(bv, t, t)
		},
		func(t VecVirtual) {
			VMULSS(mem(src, 0), a, t)
			VADDSS(b, t, t)
		})
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
// pfLabel numbers the labels of the C-prefetch blocks. Only C is
// prefetched in software: the hardware prefetchers keep up with the packed
// A and B streams.
var pfLabel int

func genGemm(name string, f64, zmm bool, mr, nv, unroll int) {
	genGemmImpl(name, f64, zmm, false, false, mr, nv, unroll)
}

// genGemmStrided emits the float32 kernel
//
//	func name(k int, a, b []float32, ldb int, c []float32, ldc int, alpha, beta float32)
//
// which is genGemm's kernel with B row p at b[p*ldb:] instead of b[p*nr:]:
// the caller's matrix is read in place, unpacked.
func genGemmStrided(name string, zmm bool, mr, nv, unroll int) {
	genGemmImpl(name, false, zmm, true, false, mr, nv, unroll)
}

// genGemmIndirect emits the float32 kernel
//
//	func name(k int, a, b []float32, offs []int, c []float32, ldc int, alpha, beta float32)
//
// with B row p at b[offs[p]:]: the rows of a stride-1 convolution's im2col
// matrix are shifted windows of the (zero-padded) image, so the kernel
// reads them from the image itself and no im2col matrix is written.
func genGemmIndirect(name string, zmm bool, mr, nv, unroll int) {
	genGemmImpl(name, false, zmm, false, true, mr, nv, unroll)
}

func genGemmImpl(name string, f64, zmm, strided, indirect bool, mr, nv, unroll int) {
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

	if indirect {
		TEXT(name, NOSPLIT, "func(k int, a, b []float32, offs []int, c []float32, ldc int, alpha, beta float32)")
		Pragma("noescape")
		Doc(fmt.Sprintf("%s is the %d×%d micro-kernel with B rows at offsets: c[i*ldc+j] = alpha*Σ_p a[p*%d+i]*b[offs[p]+j] + beta*c[i*ldc+j].", name, mr, nr, mr),
			"k >= 1; a, b, offs and c must hold the whole tile (checked by the Go caller, not here).")
	} else if strided {
		TEXT(name, NOSPLIT, "func(k int, a, b []float32, ldb int, c []float32, ldc int, alpha, beta float32)")
		Pragma("noescape")
		Doc(fmt.Sprintf("%s is the %d×%d micro-kernel with B in place: c[i*ldc+j] = alpha*Σ_p a[p*%d+i]*b[p*ldb+j] + beta*c[i*ldc+j].", name, mr, nr, mr),
			"k >= 1; a, b and c must hold the whole tile (checked by the Go caller, not here).")
	} else {
		TEXT(name, NOSPLIT, fmt.Sprintf("func(k int, a, b, c []%s, ldc int, alpha, beta %s)", typ, typ))
		Pragma("noescape")
		Doc(fmt.Sprintf("%s is the %d×%d micro-kernel: c[i*ldc+j] = alpha*Σ_p a[p*%d+i]*b[p*%d+j] + beta*c[i*ldc+j].", name, mr, nr, mr, nr),
			"k >= 1; a, b and c must hold the whole tile (checked by the Go driver, not here).")
	}

	k, pa, pb, pc, ldc := RCX, RSI, RDI, RDX, R8
	ldb := R12
	Load(Param("k"), k)
	Load(Param("a").Base(), pa)
	Load(Param("b").Base(), pb)
	Load(Param("c").Base(), pc)
	Load(Param("ldc"), ldc)
	SHLQ(U8(map[int]uint8{4: 2, 8: 3}[es]), ldc) // ldc in bytes
	if strided {
		Load(Param("ldb"), ldb)
		SHLQ(U8(2), ldb) // ldb in bytes
	}
	ptab, roff := R12, R13 // indirect: offset table, current row offset
	if indirect {
		Load(Param("offs").Base(), ptab)
	}

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
		if indirect {
			MOVQ(mem(ptab, 8*p), roff)
		}
		for v := 0; v < nv; v++ {
			if indirect {
				VMOVUPS(Mem{Base: pb, Index: roff, Scale: 4, Disp: v * vl * es}, bv[v])
			} else if strided {
				VMOVUPS(mem(pb, v*vl*es), bv[v])
			} else {
				VMOVUPS(mem(pb, (p*nr+v*vl)*es), bv[v])
			}
		}
		if strided {
			ADDQ(ldb, pb)
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
	if indirect {
		ADDQ(U32(unroll*8), ptab)
	} else if !strided {
		ADDQ(U32(unroll*nr*es), pb)
	}
	SUBQ(U8(unroll), k)
	JMP(LabelRef(lbl("loop")))

	Label(lbl("tail"))
	TESTQ(k, k)
	JZ(LabelRef(lbl("store")))
	step(0)
	ADDQ(U32(mr*es), pa)
	if indirect {
		ADDQ(U32(8), ptab)
	} else if !strided {
		ADDQ(U32(nr*es), pb)
	}
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

// genTranspose emits the packing transposes
//
//	func transposeAVX(dst, src []float32, ld, rows, k, stride int)
//	func transposeF64AVX(dst []float64, src []float32, ld, rows, k, stride int)
//
// setting dst[p*stride+r] = src[r*ld+p] for r < rows, p < k (widened to
// float64 by the second): packing A (untransposed) and Bᵀ are transposes,
// and in Go they cost as much as a good part of the multiplication; the
// float64 GEMM (activation statistics) packs float32 operands with few rows,
// where the packing cost more than the products. Rows go four at a time
// through a 4×4 in-register transpose (four 16-byte loads, and four 16-byte
// stores or, widened by VCVTPS2PD, four 32-byte ones, per 16 elements), then
// two, then one.
func genTranspose(widen bool) {
	name, sig, prefix, esz := "transposeAVX", "func(dst, src []float32, ld, rows, k, stride int)", "tr", 4
	doc := "transposeAVX sets dst[p*stride+r] = src[r*ld+p] for r < rows and p < k."
	if widen {
		name, sig, prefix, esz = "transposeF64AVX", "func(dst []float64, src []float32, ld, rows, k, stride int)", "trd", 8
		doc = "transposeF64AVX sets dst[p*stride+r] = float64(src[r*ld+p]) for r < rows and p < k."
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(doc, "The Go caller checks that both slices are long enough.")
	dst := Load(Param("dst").Base(), GP64())
	src := Load(Param("src").Base(), GP64())
	ld := Load(Param("ld"), GP64())
	rows := Load(Param("rows"), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(U8(2), ld)
	if widen {
		SHLQ(U8(3), stride)
	} else {
		SHLQ(U8(2), stride)
	}
	stride3 := GP64()
	LEAQ(Mem{Base: stride, Index: stride, Scale: 2}, stride3)
	at := func(d Register, i int) Mem { // row i of a group of four destination rows
		switch i {
		case 0:
			return mem(d, 0)
		case 3:
			return Mem{Base: d, Index: stride3, Scale: 1}
		}
		return Mem{Base: d, Index: stride, Scale: uint8(i)}
	}

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
			for i := range x {
				if widen {
					y := YMM()
					VCVTPS2PD(x[i], y)
					VMOVUPD(y, at(d, i))
				} else {
					VMOVUPS(x[i], at(d, i))
				}
			}
		case 2:
			t0, t1 := XMM(), XMM()
			VUNPCKLPS(x[1], x[0], t0) // a0 b0 a1 b1
			VUNPCKHPS(x[1], x[0], t1) // a2 b2 a3 b3
			if !widen {
				VMOVLPS(t0, at(d, 0))
				VMOVHPS(t0, at(d, 1))
				VMOVLPS(t1, at(d, 2))
				VMOVHPS(t1, at(d, 3))
				break
			}
			for i, t := range []VecVirtual{t0, t1} {
				y, h := YMM(), XMM()
				VCVTPS2PD(t, y)
				VEXTRACTF128(U8(1), y, h)
				VMOVUPD(y.AsX(), at(d, 2*i))
				VMOVUPD(h, at(d, 2*i+1))
			}
		case 1:
			if !widen {
				VMOVSS(x[0], at(d, 0))
				VEXTRACTPS(U8(1), x[0], at(d, 1))
				VEXTRACTPS(U8(2), x[0], at(d, 2))
				VEXTRACTPS(U8(3), x[0], at(d, 3))
				break
			}
			y, h := YMM(), XMM()
			VCVTPS2PD(x[0], y)
			VEXTRACTF128(U8(1), y, h)
			VMOVSD(y.AsX(), at(d, 0))
			VMOVHPD(y.AsX(), at(d, 1))
			VMOVSD(h, at(d, 2))
			VMOVHPD(h, at(d, 3))
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
			if widen {
				VCVTSS2SD(x[i], x[i], x[i])
				VMOVSD(x[i], mem(d, esz*i))
			} else {
				VMOVSS(x[i], mem(d, esz*i))
			}
			ADDQ(U8(4), s[i])
		}
		ADDQ(stride, d)
		DECQ(p)
		JMP(LabelRef(name + "_tail"))
		Label(name + "_done")
	}

	// Groups of four rows, then a pair, then a single row.
	Label(prefix + "_rows4")
	CMPQ(rows, U8(4))
	JL(LabelRef(prefix + "_rows2"))
	rowGroup(4, prefix+"_g4")
	LEAQ(Mem{Base: src, Index: ld, Scale: 4}, src)
	ADDQ(U8(4*esz), dst)
	SUBQ(U8(4), rows)
	JMP(LabelRef(prefix + "_rows4"))

	Label(prefix + "_rows2")
	CMPQ(rows, U8(2))
	JL(LabelRef(prefix + "_rows1"))
	rowGroup(2, prefix+"_g2")
	LEAQ(Mem{Base: src, Index: ld, Scale: 2}, src)
	ADDQ(U8(2*esz), dst)
	SUBQ(U8(2), rows)

	Label(prefix + "_rows1")
	TESTQ(rows, rows)
	JZ(LabelRef(prefix + "_done"))
	rowGroup(1, prefix+"_g1")

	Label(prefix + "_done")
	if widen {
		VZEROUPPER()
	}
	RET()
}

// genSumSqF64 emits
//
//	func sumSqF64AVX2(x []float32) (sum, sq float64)
//
// Σx and Σx² in one pass, with dotF64AVX2's lanes, order and reduction, so
// that sum is dotF64AVX2(x, ones) and sq is dotF64AVX2(x, x) bit for bit:
// a float32 times 1 or times itself is exact in float64, so the FMA's one
// rounding is the addition's.
func genSumSqF64() {
	TEXT("sumSqF64AVX2", NOSPLIT, "func(x []float32) (sum, sq float64)")
	Pragma("noescape")
	Doc("sumSqF64AVX2 returns Σ float64(x[i]) and Σ float64(x[i])² over i < len(x),",
		"bit for bit dotF64AVX2(x, ones) and dotF64AVX2(x, x).")
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())

	accS := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	accQ := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for j := range accS {
		VXORPD(accS[j], accS[j], accS[j])
		VXORPD(accQ[j], accQ[j], accQ[j])
	}
	Label("sumsq_loop16")
	CMPQ(n, U8(16))
	JL(LabelRef("sumsq_loop4"))
	for j := range accS {
		tx := YMM()
		VCVTPS2PD(mem(x, 16*j), tx)
		VADDPD(tx, accS[j], accS[j])
		VFMADD231PD(tx, tx, accQ[j])
	}
	ADDQ(U8(64), x)
	SUBQ(U8(16), n)
	JMP(LabelRef("sumsq_loop16"))

	Label("sumsq_loop4")
	CMPQ(n, U8(4))
	JL(LabelRef("sumsq_reduce"))
	tx := YMM()
	VCVTPS2PD(mem(x, 0), tx)
	VADDPD(tx, accS[0], accS[0])
	VFMADD231PD(tx, tx, accQ[0])
	ADDQ(U8(16), x)
	SUBQ(U8(4), n)
	JMP(LabelRef("sumsq_loop4"))

	Label("sumsq_reduce")
	s, q := reducePD(accS), reducePD(accQ)

	Label("sumsq_loop1")
	TESTQ(n, n)
	JZ(LabelRef("sumsq_done"))
	sx := XMM()
	VCVTSS2SD(mem(x, 0), sx, sx)
	VADDSD(sx, s, s)
	VFMADD231SD(sx, sx, q)
	ADDQ(U8(4), x)
	DECQ(n)
	JMP(LabelRef("sumsq_loop1"))

	Label("sumsq_done")
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	Store(q, ReturnIndex(1))
	RET()
}

// genRelu emits
//
//	func reluAVX2(dst, src []float32)
//
// setting dst[i] = src[i] < 0 ? 0 : src[i] for i < len(src) (len(dst) >=
// len(src), checked by the caller). MAXPS(0, x) returns its second operand
// unless 0 > x, so NaN and -0 pass through unchanged, exactly like the
// scalar definition.
func genRelu() {
	TEXT("reluAVX2", NOSPLIT, "func(dst, src []float32)")
	Pragma("noescape")
	Doc("reluAVX2 sets dst[i] = src[i] < 0 ? 0 : src[i] (NaN and -0 kept) for i < len(src).",
		"The caller guarantees len(dst) >= len(src).")
	d := Load(Param("dst").Base(), GP64())
	x := Load(Param("src").Base(), GP64())
	n := Load(Param("src").Len(), GP64())
	z := YMM()
	VXORPS(z, z, z)
	Label("relu_loop32")
	CMPQ(n, U8(32))
	JL(LabelRef("relu_loop8"))
	ts := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for j, t := range ts {
		VMAXPS(mem(x, 32*j), z, t) // Intel: max(src1 = 0, src2 = x)
	}
	for j, t := range ts {
		VMOVUPS(t, mem(d, 32*j))
	}
	ADDQ(U8(128), x)
	ADDQ(U8(128), d)
	SUBQ(U8(32), n)
	JMP(LabelRef("relu_loop32"))

	Label("relu_loop8")
	CMPQ(n, U8(8))
	JL(LabelRef("relu_loop1"))
	t := YMM()
	VMAXPS(mem(x, 0), z, t)
	VMOVUPS(t, mem(d, 0))
	ADDQ(U8(32), x)
	ADDQ(U8(32), d)
	SUBQ(U8(8), n)
	JMP(LabelRef("relu_loop8"))

	Label("relu_loop1")
	TESTQ(n, n)
	JZ(LabelRef("relu_done"))
	t1 := XMM()
	VMAXSS(mem(x, 0), z.AsX(), t1)
	VMOVSS(t1, mem(d, 0))
	ADDQ(U8(4), x)
	ADDQ(U8(4), d)
	DECQ(n)
	JMP(LabelRef("relu_loop1"))

	Label("relu_done")
	VZEROUPPER()
	RET()
}

// genMaxPool2x2 emits
//
//	func maxPool2x2AVX2(dst, r0, r1 []float32)
//
// which sets, for i < len(dst) rounded down to a multiple of 8,
//
//	dst[i] = chain(r0[2i], r0[2i+1], r1[2i], r1[2i+1])
//
// where chain starts from the first value and replaces the running maximum
// acc by the next value v when v > acc or v is NaN: the max-pooling rule of
// package infer (maxNaN), bit for bit (which NaN and which signed zero wins
// included). Each step is a compare for v > acc, a compare for v unordered,
// and a blend. The even and odd columns of 16 inputs are separated with
// SHUFPS, which leaves the 8 windows in the order 0 1 4 5 2 3 6 7; one
// VPERMPD puts them back. The caller guarantees len(r0), len(r1) >= 2*len(dst).
func genMaxPool2x2() {
	TEXT("maxPool2x2AVX2", NOSPLIT, "func(dst, r0, r1 []float32)")
	Pragma("noescape")
	Doc("maxPool2x2AVX2 sets dst[i] to the maxNaN chain of r0[2i], r0[2i+1], r1[2i], r1[2i+1]",
		"for i < len(dst)&^7. The caller guarantees len(r0), len(r1) >= 2*len(dst).")
	d := Load(Param("dst").Base(), GP64())
	p0 := Load(Param("r0").Base(), GP64())
	p1 := Load(Param("r1").Base(), GP64())
	n := Load(Param("dst").Len(), GP64())
	Label("mp_loop")
	CMPQ(n, U8(8))
	JL(LabelRef("mp_done"))
	a0, a1, b0, b1 := YMM(), YMM(), YMM(), YMM()
	VMOVUPS(mem(p0, 0), a0)
	VMOVUPS(mem(p0, 32), a1)
	VMOVUPS(mem(p1, 0), b0)
	VMOVUPS(mem(p1, 32), b1)
	acc, v1, v2, v3 := YMM(), YMM(), YMM(), YMM()
	VSHUFPS(U8(0x88), a1, a0, acc) // r0 even columns
	VSHUFPS(U8(0xDD), a1, a0, v1)  // r0 odd columns
	VSHUFPS(U8(0x88), b1, b0, v2)  // r1 even
	VSHUFPS(U8(0xDD), b1, b0, v3)  // r1 odd
	for _, v := range []VecVirtual{v1, v2, v3} {
		gt, un := YMM(), YMM()
		VCMPPS(U8(0x1E), acc, v, gt) // v > acc (ordered, quiet)
		VCMPPS(U8(0x03), v, v, un)   // v is NaN
		VORPS(un, gt, gt)
		VBLENDVPS(gt, v, acc, acc) // acc = gt ? v : acc
	}
	VPERMPD(U8(0xD8), acc, acc)
	VMOVUPS(acc, mem(d, 0))
	ADDQ(U8(64), p0)
	ADDQ(U8(64), p1)
	ADDQ(U8(32), d)
	SUBQ(U8(8), n)
	JMP(LabelRef("mp_loop"))
	Label("mp_done")
	VZEROUPPER()
	RET()
}

// vecConsts emits a read-only table of float32 constants, each replicated
// into a 32-byte vector so that it can be a YMM memory operand, and
// returns a function giving the operand of constant i.
func vecConsts(name string, vals []float32) func(i int) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i, v := range vals {
		for l := 0; l < 8; l++ {
			DATA(32*i+4*l, U32(math.Float32bits(v)))
		}
	}
	return func(i int) Mem { return m.Offset(32 * i) }
}

// unaryLoop emits the loop of a float32 → float32 vector function over
// len(src)&^7 elements, 8 at a time; body maps x in place.
func unaryLoop(name string, body func(x VecVirtual)) {
	d := Load(Param("dst").Base(), GP64())
	x := Load(Param("src").Base(), GP64())
	n := Load(Param("src").Len(), GP64())
	Label(name + "_loop")
	CMPQ(n, U8(8))
	JL(LabelRef(name + "_done"))
	v := YMM()
	VMOVUPS(mem(x, 0), v)
	body(v)
	VMOVUPS(v, mem(d, 0))
	ADDQ(U8(32), x)
	ADDQ(U8(32), d)
	SUBQ(U8(8), n)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// genExp emits expAVX2(dst, src): dst[i] ≈ e^src[i] for i < len(src)&^7
// (see expGeneric in exp.go for the algorithm; the Go and the assembly
// evaluate the same float32 operations, the assembly with FMAs).
func genExp() {
	TEXT("expAVX2", NOSPLIT, "func(dst, src []float32)")
	Pragma("noescape")
	Doc("expAVX2 sets dst[i] ≈ e^src[i] for i < len(src)&^7 (the caller guarantees len(dst) >= len(src)).")
	c := vecConsts("expconst", []float32{
		89, -104, math.Log2E, -0.693359375, 2.12194440e-4,
		1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
		1, math.Float32frombits(127),
	})
	unaryLoop("exp", func(x VecVirtual) {
		t := YMM()
		// Clamp with x as the second (Intel) operand, so NaN passes.
		VMOVUPS(c(0), t)
		VMINPS(x, t, x)
		VMOVUPS(c(1), t)
		VMAXPS(x, t, x)
		n := YMM()
		VMULPS(c(2), x, n)
		VROUNDPS(U8(0), n, n) // nearest, ties to even
		r := YMM()
		VMOVAPS(x, r)
		VFMADD231PS(c(3), n, r) // r = x - n*ln2_hi (exact)
		VFMADD231PS(c(4), n, r) // r -= n*ln2_lo
		y := YMM()
		VMOVUPS(c(5), y)
		for i := 6; i <= 10; i++ {
			VFMADD213PS(c(i), r, y)
		}
		r2 := YMM()
		VMULPS(r, r, r2)
		VFMADD213PS(r, r2, y) // y = p*r² + r
		VADDPS(c(11), y, y)   // + 1
		// 2^n as 2^n1 · 2^n2 with n1 = n>>1, so that both factors are
		// normal for n in [-150, 128] and a subnormal result is rounded
		// once, by the last multiplication.
		ni, n1, n2 := YMM(), YMM(), YMM()
		VCVTTPS2DQ(n, ni)
		VPSRAD(U8(1), ni, n1)
		VPSUBD(n1, ni, n2)
		VPADDD(c(12), n1, n1)
		VPADDD(c(12), n2, n2)
		VPSLLD(U8(23), n1, n1)
		VPSLLD(U8(23), n2, n2)
		VMULPS(n1, y, y)
		VMULPS(n2, y, x)
	})
}

// genErf emits erfAVX2(dst, src): dst[i] ≈ erf(src[i]) for i < len(src)&^7,
// the rational approximation of erfGeneric (exp.go).
func genErf() {
	TEXT("erfAVX2", NOSPLIT, "func(dst, src []float32)")
	Pragma("noescape")
	Doc("erfAVX2 sets dst[i] ≈ erf(src[i]) for i < len(src)&^7 (the caller guarantees len(dst) >= len(src)).")
	c := vecConsts("erfconst", []float32{
		4, -4,
		-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
		-7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02,
		-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03, -1.42647390514189e-02,
	})
	unaryLoop("erf", func(x VecVirtual) {
		t := YMM()
		VMOVUPS(c(0), t)
		VMINPS(x, t, x)
		VMOVUPS(c(1), t)
		VMAXPS(x, t, x)
		x2 := YMM()
		VMULPS(x, x, x2)
		p := YMM()
		VMOVUPS(c(2), p)
		for i := 3; i <= 8; i++ {
			VFMADD213PS(c(i), x2, p)
		}
		VMULPS(x, p, p)
		q := YMM()
		VMOVUPS(c(9), q)
		for i := 10; i <= 13; i++ {
			VFMADD213PS(c(i), x2, q)
		}
		VDIVPS(q, p, x)
	})
}

// genGemmSmall emits
//
//	func sgemmSmallAVX2(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int)
//
// c[i*ldc+j] = Σ_{p<k} a[i*lda+p]*b[p*ldb+j] + 0 for i < m, j < n&^7, the
// sums FMA chains from zero in increasing p, as in the GEMM micro-kernels
// (whose beta = 0 form also adds +0, which turns -0 into +0). For the
// tiny products of attention heads (16×16×16), where packing costs more
// than the product: no packing, rows of A broadcast straight from memory
// and B read in place. Columns go in strips of 16 (then 8), rows in blocks
// of 4 (then 1). The caller guarantees the slice lengths.
//
// With add (sgemmSmallAddAVX2), C's value is added instead of +0: the
// GEMM's beta = 1 form, one rounding of acc + c.
func genGemmSmall(name string, add bool) {
	TEXT(name, NOSPLIT, "func(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int)")
	Pragma("noescape")
	if add {
		Doc(name+" sets c[i*ldc+j] += Σ_p a[i*lda+p]*b[p*ldb+j] (one rounding of the sum and c) for i < m, j < n&^7, p < k (k >= 1).",
			"The caller guarantees the slice lengths.")
	} else {
		Doc(name+" sets c[i*ldc+j] = Σ_p a[i*lda+p]*b[p*ldb+j] + 0 for i < m, j < n&^7, p < k (k >= 1).",
			"The caller guarantees the slice lengths.")
	}
	n := Load(Param("n"), GP64())
	lda := Load(Param("lda"), GP64())
	ldb := Load(Param("ldb"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), lda)
	SHLQ(U8(2), ldb)
	SHLQ(U8(2), ldc)
	lda3 := GP64()
	LEAQ(Mem{Base: lda, Index: lda, Scale: 2}, lda3)
	pb := Load(Param("b").Base(), GP64()) // current column strip of B
	pc := Load(Param("c").Base(), GP64()) // current column strip of C
	zero := YMM()
	VXORPS(zero, zero, zero)

	// block emits the code for `rows` rows × `nv` vectors of the current
	// strip, rows starting at A row pointer ar and C pointer cr.
	block := func(name string, rows, nv int, ar, cr GPVirtual) {
		acc := make([]VecVirtual, rows*nv)
		for i := range acc {
			acc[i] = YMM()
			VXORPS(acc[i], acc[i], acc[i])
		}
		ap := GP64()
		MOVQ(ar, ap)
		rowA := func(r int) Mem {
			switch r {
			case 0:
				return mem(ap, 0)
			case 1:
				return Mem{Base: ap, Index: lda, Scale: 1}
			case 2:
				return Mem{Base: ap, Index: lda, Scale: 2}
			}
			return Mem{Base: ap, Index: lda3, Scale: 1}
		}
		bp := GP64()
		MOVQ(pb, bp)
		kk := Load(Param("k"), GP64())
		bv := make([]VecVirtual, nv)
		for v := range bv {
			bv[v] = YMM()
		}
		Label(name + "_k")
		for v := 0; v < nv; v++ {
			VMOVUPS(mem(bp, 32*v), bv[v])
		}
		for r := 0; r < rows; r++ {
			t := YMM()
			VBROADCASTSS(rowA(r), t)
			for v := 0; v < nv; v++ {
				VFMADD231PS(bv[v], t, acc[r*nv+v])
			}
		}
		ADDQ(U8(4), ap)
		ADDQ(ldb, bp)
		DECQ(kk)
		JNZ(LabelRef(name + "_k"))
		cp := GP64()
		MOVQ(cr, cp)
		for r := 0; r < rows; r++ {
			for v := 0; v < nv; v++ {
				if add {
					VADDPS(mem(cp, 32*v), acc[r*nv+v], acc[r*nv+v])
				} else {
					VADDPS(zero, acc[r*nv+v], acc[r*nv+v])
				}
				VMOVUPS(acc[r*nv+v], mem(cp, 32*v))
			}
			if r < rows-1 {
				ADDQ(ldc, cp)
			}
		}
	}

	// strip emits the loop over all rows for a strip of nv vectors.
	strip := func(name string, nv int) {
		ar := GP64()
		Load(Param("a").Base(), ar)
		cr := GP64()
		MOVQ(pc, cr)
		i := GP64()
		Load(Param("m"), i)
		Label(name + "_rows4")
		CMPQ(i, U8(4))
		JL(LabelRef(name + "_rows1"))
		block(name+"_b4", 4, nv, ar, cr)
		LEAQ(Mem{Base: ar, Index: lda, Scale: 4}, ar)
		LEAQ(Mem{Base: cr, Index: ldc, Scale: 4}, cr)
		SUBQ(U8(4), i)
		JMP(LabelRef(name + "_rows4"))
		Label(name + "_rows1")
		TESTQ(i, i)
		JZ(LabelRef(name + "_done"))
		block(name+"_b1", 1, nv, ar, cr)
		ADDQ(lda, ar)
		ADDQ(ldc, cr)
		DECQ(i)
		JMP(LabelRef(name + "_rows1"))
		Label(name + "_done")
		ADDQ(U8(32*nv), pb)
		ADDQ(U8(32*nv), pc)
		SUBQ(U8(8*nv), n)
	}

	Label(name + "_strip16")
	CMPQ(n, U8(16))
	JL(LabelRef(name + "_strip8"))
	strip(name+"_s16", 2)
	JMP(LabelRef(name + "_strip16"))
	Label(name + "_strip8")
	CMPQ(n, U8(8))
	JL(LabelRef(name + "_done"))
	strip(name+"_s8", 1)
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// genBinary emits the elementwise kernels of one arithmetic operation:
//
//	func <op>VVAVX2(dst, x, y []float32)          dst[i] = x[i] op y[i]
//	func <op>VSAVX2(dst, x []float32, y float32)  dst[i] = x[i] op y
//	func <op>SVAVX2(dst []float32, x float32, y []float32)  dst[i] = x op y[i]
//
// for i < len(dst)&^7 (the Go wrappers do the rest; the caller guarantees
// the lengths). One IEEE operation per element: the bits of the scalar code.
func genBinary(op string) {
	instr := map[string]func(...Op){"Add": VADDPS, "Sub": VSUBPS, "Mul": VMULPS, "Div": VDIVPS}[op]
	name := strings.ToLower(op)
	for _, mode := range []string{"VV", "VS", "SV"} {
		fn := name + mode + "AVX2"
		sig := map[string]string{
			"VV": "func(dst, x, y []float32)",
			"VS": "func(dst, x []float32, y float32)",
			"SV": "func(dst []float32, x float32, y []float32)",
		}[mode]
		TEXT(fn, NOSPLIT, sig)
		Pragma("noescape")
		Doc(fmt.Sprintf("%s computes dst[i] = x%s %s y%s for i < len(dst)&^7.", fn,
			map[bool]string{true: "[i]", false: ""}[mode[0] == 'V'],
			map[string]string{"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}[op],
			map[bool]string{true: "[i]", false: ""}[mode[1] == 'V']))
		d := Load(Param("dst").Base(), GP64())
		n := Load(Param("dst").Len(), GP64())
		var px, py Register
		var sx, sy VecVirtual
		scalar := func(name string) VecVirtual {
			a, err := Param(name).Resolve()
			if err != nil {
				panic(err)
			}
			v := YMM()
			VBROADCASTSS(a.Addr, v)
			return v
		}
		if mode[0] == 'V' {
			px = Load(Param("x").Base(), GP64())
		} else {
			sx = scalar("x")
		}
		if mode[1] == 'V' {
			py = Load(Param("y").Base(), GP64())
		} else {
			sy = scalar("y")
		}
		loop := func(lbl string, width int) {
			Label(fn + lbl)
			CMPQ(n, U8(8*width))
			JL(LabelRef(fn + lbl + "_end"))
			for u := 0; u < width; u++ {
				a, b := YMM(), YMM()
				if mode[0] == 'V' {
					VMOVUPS(mem(px, 32*u), a)
				} else {
					a = sx
				}
				if mode[1] == 'V' {
					VMOVUPS(mem(py, 32*u), b)
				} else {
					b = sy
				}
				r := YMM()
				instr(b, a, r) // Go order: r = a op b
				VMOVUPS(r, mem(d, 32*u))
			}
			ADDQ(U8(32*width), d)
			if mode[0] == 'V' {
				ADDQ(U8(32*width), px)
			}
			if mode[1] == 'V' {
				ADDQ(U8(32*width), py)
			}
			SUBQ(U8(8*width), n)
			JMP(LabelRef(fn + lbl))
			Label(fn + lbl + "_end")
		}
		loop("_x4", 4)
		loop("_x1", 1)
		VZEROUPPER()
		RET()
	}
}

// genMaxPool2x2Rows emits
//
//	func maxPool2x2RowsAVX2(dst, src []float32, rows, outW, ld int) int
//
// the 2×2, stride-2 max pooling of `rows` output rows at once: output row
// r (dst[r*outW:]) pools input rows src[2r*ld:] and src[(2r+1)*ld:], with
// the exact chain of genMaxPool2x2. Each row goes 8 outputs at a time; a
// row whose width is not a multiple of 8 ends with a group overlapping the
// previous one, or, narrower than 8, one group that runs into the next
// row's outputs (which that row then rewrites). It returns the number of
// rows done: it stops before a narrow row with fewer than 8 outputs of dst
// left, which the caller finishes. The caller guarantees outW >= 1,
// len(dst) >= rows*outW, and src readable up to (2*rows-1)*ld + max(2*outW, 16).
func genMaxPool2x2Rows() {
	TEXT("maxPool2x2RowsAVX2", NOSPLIT, "func(dst, src []float32, rows, outW, ld int) int")
	Pragma("noescape")
	Doc("maxPool2x2RowsAVX2 pools rows output rows of a 2×2, stride-2 max pooling (see genMaxPool2x2Rows) and returns the rows done.")
	d := Load(Param("dst").Base(), GP64())
	dlen := Load(Param("dst").Len(), GP64())
	sp := Load(Param("src").Base(), GP64())
	rows := Load(Param("rows"), GP64())
	outW := Load(Param("outW"), GP64())
	ld := Load(Param("ld"), GP64())
	SHLQ(U8(2), ld) // bytes
	done := GP64()
	XORQ(done, done)
	// group computes 8 outputs at dst byte address dd from input rows at
	// r0 (and r0+ld), both already offset to the group.
	group := func(dd, r0 GPVirtual) {
		a0, a1, b0, b1 := YMM(), YMM(), YMM(), YMM()
		VMOVUPS(mem(r0, 0), a0)
		VMOVUPS(mem(r0, 32), a1)
		VMOVUPS(Mem{Base: r0, Index: ld, Scale: 1}, b0)
		VMOVUPS(Mem{Base: r0, Index: ld, Scale: 1, Disp: 32}, b1)
		acc, v1, v2, v3 := YMM(), YMM(), YMM(), YMM()
		VSHUFPS(U8(0x88), a1, a0, acc)
		VSHUFPS(U8(0xDD), a1, a0, v1)
		VSHUFPS(U8(0x88), b1, b0, v2)
		VSHUFPS(U8(0xDD), b1, b0, v3)
		for _, v := range []VecVirtual{v1, v2, v3} {
			gt, un := YMM(), YMM()
			VCMPPS(U8(0x1E), acc, v, gt)
			VCMPPS(U8(0x03), v, v, un)
			VORPS(un, gt, gt)
			VBLENDVPS(gt, v, acc, acc)
		}
		VPERMPD(U8(0xD8), acc, acc)
		VMOVUPS(acc, mem(dd, 0))
	}
	Label("mpr_row")
	CMPQ(done, rows)
	JGE(LabelRef("mpr_end"))
	// Row pointers: dr = d + done*outW*4, r0 = sp + done*2*ld.
	dr, r0 := GP64(), GP64()
	MOVQ(done, dr)
	IMULQ(outW, dr)
	SHLQ(U8(2), dr)
	ADDQ(d, dr)
	MOVQ(done, r0)
	IMULQ(ld, r0)
	SHLQ(U8(1), r0)
	ADDQ(sp, r0)
	j := GP64() // outputs left in the row
	MOVQ(outW, j)
	CMPQ(j, U8(8))
	JGE(LabelRef("mpr_full"))
	// Narrow row: one group running into the next row, if dst has room.
	room := GP64()
	MOVQ(done, room)
	IMULQ(outW, room)
	NEGQ(room)
	ADDQ(dlen, room) // dst elements from this row on
	CMPQ(room, U8(8))
	JL(LabelRef("mpr_end"))
	group(dr, r0)
	JMP(LabelRef("mpr_next"))
	Label("mpr_full")
	dd, rr := GP64(), GP64()
	MOVQ(dr, dd)
	MOVQ(r0, rr)
	Label("mpr_group")
	CMPQ(j, U8(8))
	JL(LabelRef("mpr_tail"))
	group(dd, rr)
	ADDQ(U8(32), dd)
	ADDQ(U8(64), rr)
	SUBQ(U8(8), j)
	JMP(LabelRef("mpr_group"))
	Label("mpr_tail")
	TESTQ(j, j)
	JZ(LabelRef("mpr_next"))
	// The last 8 outputs of the row, overlapping the previous group.
	t := GP64()
	MOVQ(U32(8), t)
	SUBQ(j, t) // 8 - j outputs back
	SHLQ(U8(2), t)
	SUBQ(t, dd)
	SHLQ(U8(1), t)
	SUBQ(t, rr)
	group(dd, rr)
	Label("mpr_next")
	INCQ(done)
	JMP(LabelRef("mpr_row"))
	Label("mpr_end")
	VZEROUPPER()
	Store(done, ReturnIndex(0))
	RET()
}

// genPause emits pauseLoop(n int), n PAUSE instructions: the idle loop of
// the worker pool, which must leave the core's resources to an SMT sibling
// (the other vCPU may be one) while it waits.
func genPause() {
	TEXT("pauseLoop", NOSPLIT, "func(n int)")
	Doc("pauseLoop executes n PAUSE instructions.")
	n := Load(Param("n"), GP64())
	Label("pause_loop")
	TESTQ(n, n)
	JZ(LabelRef("pause_done"))
	PAUSE()
	DECQ(n)
	JMP(LabelRef("pause_loop"))
	Label("pause_done")
	RET()
}

// genCopyRows emits
//
//	func copyRowsAVX2(dst, src []float32, rows, w, dstStride, srcStride int)
//
// copying rows of w >= 8 floats between strided layouts (the compaction of
// a convolution's wide output, and the copy of an image into its padded
// form), 8 at a time, the last 8 of each row overlapping the previous
// group. The caller guarantees w >= 8, the strides and the lengths, and
// that the row copies do not overlap.
func genCopyRows() {
	TEXT("copyRowsAVX2", NOSPLIT, "func(dst, src []float32, rows, w, dstStride, srcStride int)")
	Pragma("noescape")
	Doc("copyRowsAVX2 copies rows rows of w >= 8 floats from src (row stride srcStride) to dst (dstStride).")
	d := Load(Param("dst").Base(), GP64())
	sp := Load(Param("src").Base(), GP64())
	rows := Load(Param("rows"), GP64())
	w := Load(Param("w"), GP64())
	ds := Load(Param("dstStride"), GP64())
	ss := Load(Param("srcStride"), GP64())
	SHLQ(U8(2), ds)
	SHLQ(U8(2), ss)
	last := GP64() // byte offset of the last group of 8
	MOVQ(w, last)
	SUBQ(U8(8), last)
	SHLQ(U8(2), last)
	Label("cr_row")
	TESTQ(rows, rows)
	JZ(LabelRef("cr_done"))
	off := GP64()
	XORQ(off, off)
	v := YMM()
	Label("cr_group")
	CMPQ(off, last)
	JGE(LabelRef("cr_last"))
	VMOVUPS(Mem{Base: sp, Index: off, Scale: 1}, v)
	VMOVUPS(v, Mem{Base: d, Index: off, Scale: 1})
	ADDQ(U8(32), off)
	JMP(LabelRef("cr_group"))
	Label("cr_last")
	VMOVUPS(Mem{Base: sp, Index: last, Scale: 1}, v)
	VMOVUPS(v, Mem{Base: d, Index: last, Scale: 1})
	ADDQ(ds, d)
	ADDQ(ss, sp)
	DECQ(rows)
	JMP(LabelRef("cr_row"))
	Label("cr_done")
	VZEROUPPER()
	RET()
}

// genCopyRowsEven emits
//
//	func copyRowsEvenAVX2(dst, src []float32, rows, w, dstStride, srcStride int)
//
// setting dst[r*dstStride+j] = src[r*srcStride+2j] for j < w (w >= 8): the
// even columns, as a stride-2 convolution's phase images need. Groups of 8
// from 16 loads (SHUFPS, then VPERMPD to restore the order), the last group
// overlapping. It reads src up to r*srcStride + 2w (one past the last
// element used); the caller guarantees that and the rest of the geometry.
func genCopyRowsEven() {
	TEXT("copyRowsEvenAVX2", NOSPLIT, "func(dst, src []float32, rows, w, dstStride, srcStride int)")
	Pragma("noescape")
	Doc("copyRowsEvenAVX2 copies the even elements of rows rows of 2w floats from src (row stride srcStride) to dst (dstStride); w >= 8.")
	d := Load(Param("dst").Base(), GP64())
	sp := Load(Param("src").Base(), GP64())
	rows := Load(Param("rows"), GP64())
	w := Load(Param("w"), GP64())
	ds := Load(Param("dstStride"), GP64())
	ss := Load(Param("srcStride"), GP64())
	SHLQ(U8(2), ds)
	SHLQ(U8(2), ss)
	last := GP64() // byte offset in dst of the last group of 8
	MOVQ(w, last)
	SUBQ(U8(8), last)
	SHLQ(U8(2), last)
	evens := func(so, do Mem) {
		a0, a1 := YMM(), YMM()
		VMOVUPS(so, a0)
		VMOVUPS(Mem{Base: so.Base, Index: so.Index, Scale: so.Scale, Disp: 32}, a1)
		VSHUFPS(U8(0x88), a1, a0, a0)
		VPERMPD(U8(0xD8), a0, a0)
		VMOVUPS(a0, do)
	}
	Label("cre_row")
	TESTQ(rows, rows)
	JZ(LabelRef("cre_done"))
	off := GP64()
	XORQ(off, off)
	Label("cre_group")
	CMPQ(off, last)
	JGE(LabelRef("cre_last"))
	evens(Mem{Base: sp, Index: off, Scale: 2}, Mem{Base: d, Index: off, Scale: 1})
	ADDQ(U8(32), off)
	JMP(LabelRef("cre_group"))
	Label("cre_last")
	evens(Mem{Base: sp, Index: last, Scale: 2}, Mem{Base: d, Index: last, Scale: 1})
	ADDQ(ds, d)
	ADDQ(ss, sp)
	DECQ(rows)
	JMP(LabelRef("cre_row"))
	Label("cre_done")
	VZEROUPPER()
	RET()
}
