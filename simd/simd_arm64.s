//go:build !noasm && !appengine && !gccgo

// NEON kernels for arm64, written by hand (avo only targets amd64).
//
// The Go assembler lacks some Advanced SIMD instructions; those are emitted
// with WORD and the encodings from the Arm ARM (section C7.2), through the
// macros below. Register numbers in the macros are plain integers (V4 is 4).

#include "textflag.h"

// FADD Vd.4S, Vn.4S, Vm.4S
#define FADD4S(m, n, d) WORD $(0x4E20D400 | (m)<<16 | (n)<<5 | (d))
// FADD Vd.2D, Vn.2D, Vm.2D
#define FADD2D(m, n, d) WORD $(0x4E60D400 | (m)<<16 | (n)<<5 | (d))
// FADDP Vd.4S, Vn.4S, Vm.4S (pairwise)
#define FADDP4S(m, n, d) WORD $(0x6E20D400 | (m)<<16 | (n)<<5 | (d))
// FADDP Dd, Vn.2D (scalar pairwise: d = n[0] + n[1])
#define FADDPD(n, d) WORD $(0x7E70D800 | (n)<<5 | (d))
// FMUL Vd.4S, Vn.4S, Vm.4S and FMUL Vd.2D, Vn.2D, Vm.2D
#define FMUL4S(m, n, d) WORD $(0x6E20DC00 | (m)<<16 | (n)<<5 | (d))
#define FMUL2D(m, n, d) WORD $(0x6E60DC00 | (m)<<16 | (n)<<5 | (d))
// FCVTL Vd.2D, Vn.2S (low two floats to doubles) and FCVTL2 (high two)
#define FCVTL(n, d) WORD $(0x0E617800 | (n)<<5 | (d))
#define FCVTL2(n, d) WORD $(0x4E617800 | (n)<<5 | (d))
// FMLA Vd.4S, Vn.4S, Vm.S[i]: Vd += Vn * Vm[i] (fused, by element)
#define FMLAS(m, i, n, d) WORD $(0x4F801000 | ((i)&1)<<21 | (m)<<16 | ((i)>>1)<<11 | (n)<<5 | (d))
// FMLA Vd.2D, Vn.2D, Vm.D[i]
#define FMLAD(m, i, n, d) WORD $(0x4FC01000 | (m)<<16 | (i)<<11 | (n)<<5 | (d))

// func dotNEON(x, y []float32) float32
TEXT ·dotNEON(SB), NOSPLIT, $0-52
	MOVD x_base+0(FP), R0
	MOVD x_len+8(FP), R2
	MOVD y_base+24(FP), R1
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16

dot_loop16:
	CMP  $16, R2
	BLT  dot_loop4
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R1), [V8.S4, V9.S4, V10.S4, V11.S4]
	VFMLA V4.S4, V8.S4, V0.S4
	VFMLA V5.S4, V9.S4, V1.S4
	VFMLA V6.S4, V10.S4, V2.S4
	VFMLA V7.S4, V11.S4, V3.S4
	SUB  $16, R2
	B    dot_loop16

dot_loop4:
	CMP  $4, R2
	BLT  dot_reduce
	VLD1.P 16(R0), [V4.S4]
	VLD1.P 16(R1), [V8.S4]
	VFMLA V4.S4, V8.S4, V0.S4
	SUB  $4, R2
	B    dot_loop4

dot_reduce:
	FADD4S(1, 0, 0)
	FADD4S(3, 2, 2)
	FADD4S(2, 0, 0)
	FADDP4S(0, 0, 0)
	FADDP4S(0, 0, 0) // F0 = Σ lanes

dot_loop1:
	CBZ  R2, dot_done
	FMOVS.P 4(R0), F4
	FMOVS.P 4(R1), F5
	FMADDS F5, F0, F4, F0 // F0 += F4*F5
	SUB  $1, R2
	B    dot_loop1

dot_done:
	FMOVS F0, ret+48(FP)
	RET

// func dotF64NEON(x, y []float32) float64
TEXT ·dotF64NEON(SB), NOSPLIT, $0-56
	MOVD x_base+0(FP), R0
	MOVD x_len+8(FP), R2
	MOVD y_base+24(FP), R1
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16

dotf64_loop8:
	CMP  $8, R2
	BLT  dotf64_reduce
	VLD1.P 32(R0), [V4.S4, V5.S4]
	VLD1.P 32(R1), [V6.S4, V7.S4]
	FCVTL(4, 8)
	FCVTL2(4, 9)
	FCVTL(5, 10)
	FCVTL2(5, 11)
	FCVTL(6, 12)
	FCVTL2(6, 13)
	FCVTL(7, 14)
	FCVTL2(7, 15)
	VFMLA V8.D2, V12.D2, V0.D2
	VFMLA V9.D2, V13.D2, V1.D2
	VFMLA V10.D2, V14.D2, V2.D2
	VFMLA V11.D2, V15.D2, V3.D2
	SUB  $8, R2
	B    dotf64_loop8

dotf64_reduce:
	FADD2D(1, 0, 0)
	FADD2D(3, 2, 2)
	FADD2D(2, 0, 0)
	FADDPD(0, 0) // F0 = lane 0 + lane 1

dotf64_loop1:
	CBZ  R2, dotf64_done
	FMOVS.P 4(R0), F4
	FMOVS.P 4(R1), F5
	FCVTSD F4, F4
	FCVTSD F5, F5
	FMADDD F5, F0, F4, F0
	SUB  $1, R2
	B    dotf64_loop1

dotf64_done:
	FMOVD F0, ret+48(FP)
	RET

// func axpyNEON(alpha float32, x, y []float32)
TEXT ·axpyNEON(SB), NOSPLIT, $0-56
	FMOVS alpha+0(FP), F31
	MOVD x_base+8(FP), R0
	MOVD x_len+16(FP), R2
	MOVD y_base+32(FP), R1
	VDUP V31.S[0], V30.S4

axpy_loop16:
	CMP  $16, R2
	BLT  axpy_loop4
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1 (R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	VFMLA V0.S4, V30.S4, V4.S4
	VFMLA V1.S4, V30.S4, V5.S4
	VFMLA V2.S4, V30.S4, V6.S4
	VFMLA V3.S4, V30.S4, V7.S4
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R1)
	SUB  $16, R2
	B    axpy_loop16

axpy_loop4:
	CMP  $4, R2
	BLT  axpy_loop1
	VLD1.P 16(R0), [V0.S4]
	VLD1 (R1), [V4.S4]
	VFMLA V0.S4, V30.S4, V4.S4
	VST1.P [V4.S4], 16(R1)
	SUB  $4, R2
	B    axpy_loop4

axpy_loop1:
	CBZ  R2, axpy_done
	FMOVS.P 4(R0), F0
	FMOVS (R1), F4
	FMADDS F31, F4, F0, F4 // F4 += F0*alpha
	FMOVS.P F4, 4(R1)
	SUB  $1, R2
	B    axpy_loop1

axpy_done:
	RET

// func scaleNEON(alpha float32, x []float32)
TEXT ·scaleNEON(SB), NOSPLIT, $0-32
	FMOVS alpha+0(FP), F31
	MOVD x_base+8(FP), R0
	MOVD x_len+16(FP), R2
	VDUP V31.S[0], V30.S4

scale_loop16:
	CMP  $16, R2
	BLT  scale_loop4
	VLD1 (R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	FMUL4S(30, 0, 0)
	FMUL4S(30, 1, 1)
	FMUL4S(30, 2, 2)
	FMUL4S(30, 3, 3)
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB  $16, R2
	B    scale_loop16

scale_loop4:
	CMP  $4, R2
	BLT  scale_loop1
	VLD1 (R0), [V0.S4]
	FMUL4S(30, 0, 0)
	VST1.P [V0.S4], 16(R0)
	SUB  $4, R2
	B    scale_loop4

scale_loop1:
	CBZ  R2, scale_done
	FMOVS (R0), F0
	FMULS F31, F0, F0
	FMOVS.P F0, 4(R0)
	SUB  $1, R2
	B    scale_loop1

scale_done:
	RET

// func scaleShiftNEON(dst, src []float32, a, b float32)
// dst[i] = src[i]*a + b: FMUL, then FADD (no fused multiply-add).
TEXT ·scaleShiftNEON(SB), NOSPLIT, $0-56
	MOVD  dst_base+0(FP), R0
	MOVD  src_base+24(FP), R1
	MOVD  src_len+32(FP), R2
	FMOVS a+48(FP), F30
	FMOVS b+52(FP), F31
	VDUP  V30.S[0], V28.S4
	VDUP  V31.S[0], V29.S4

scaleshift_loop16:
	CMP    $16, R2
	BLT    scaleshift_loop4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	FMUL4S(28, 0, 0)
	FMUL4S(28, 1, 1)
	FMUL4S(28, 2, 2)
	FMUL4S(28, 3, 3)
	FADD4S(29, 0, 0)
	FADD4S(29, 1, 1)
	FADD4S(29, 2, 2)
	FADD4S(29, 3, 3)
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB    $16, R2
	B      scaleshift_loop16

scaleshift_loop4:
	CMP    $4, R2
	BLT    scaleshift_loop1
	VLD1.P 16(R1), [V0.S4]
	FMUL4S(28, 0, 0)
	FADD4S(29, 0, 0)
	VST1.P [V0.S4], 16(R0)
	SUB    $4, R2
	B      scaleshift_loop4

scaleshift_loop1:
	CBZ     R2, scaleshift_done
	FMOVS.P 4(R1), F0
	FMULS   F30, F0, F0
	FADDS   F31, F0, F0
	FMOVS.P F0, 4(R0)
	SUB     $1, R2
	B       scaleshift_loop1

scaleshift_done:
	RET

// The GEMM micro-kernels have the contract of the amd64 ones (see
// microKernel in gemm.go): c[i*ldc+j] = alpha*Σ_p a[p*mr+i]*b[p*nr+j] +
// beta*c, each lane an FMA chain from zero in increasing p, then one FMA
// with alpha whose addend is c (beta == 1), 0 (beta == ±0, C not read) or
// round(beta*c).
// Accumulators: V(4i+v) holds row i, columns 4v..4v+3 (float32) or 2v..2v+1
// (float64); V24-V27 hold the B row; V28-V30 the A column.

// One k step of the 6×16 float32 kernel: A column a[0..5] in V28 (0-3) and
// V29 (4-5), B row in V24-V27.
#define SROW(i, r, l) \
	FMLAS(r, l, 24, 4*i+0); \
	FMLAS(r, l, 25, 4*i+1); \
	FMLAS(r, l, 26, 4*i+2); \
	FMLAS(r, l, 27, 4*i+3)

#define SSTEP \
	FMOVQ (R0), F28; \
	FMOVD 16(R0), F29; \
	ADD  $24, R0; \
	VLD1.P 64(R1), [V24.S4, V25.S4, V26.S4, V27.S4]; \
	SROW(0, 28, 0); \
	SROW(1, 28, 1); \
	SROW(2, 28, 2); \
	SROW(3, 28, 3); \
	SROW(4, 29, 0); \
	SROW(5, 29, 1)

// C row i = alpha*acc + (C row, 0 or beta*C row): alpha in V28, beta in
// V29, C row pointer R2, ldc bytes in R3. SLOAD0/1/N put the addend in
// V24-V27.
#define SLOAD1 \
	VLD1 (R2), [V24.S4, V25.S4, V26.S4, V27.S4]

#define SLOAD0 \
	VEOR V24.B16, V24.B16, V24.B16; \
	VEOR V25.B16, V25.B16, V25.B16; \
	VEOR V26.B16, V26.B16, V26.B16; \
	VEOR V27.B16, V27.B16, V27.B16

#define SLOADN \
	VLD1 (R2), [V24.S4, V25.S4, V26.S4, V27.S4]; \
	FMUL4S(29, 24, 24); \
	FMUL4S(29, 25, 25); \
	FMUL4S(29, 26, 26); \
	FMUL4S(29, 27, 27)

#define SSTORE(LOAD, a0, a1, a2, a3) \
	LOAD; \
	VFMLA a0.S4, V28.S4, V24.S4; \
	VFMLA a1.S4, V28.S4, V25.S4; \
	VFMLA a2.S4, V28.S4, V26.S4; \
	VFMLA a3.S4, V28.S4, V27.S4; \
	VST1 [V24.S4, V25.S4, V26.S4, V27.S4], (R2); \
	ADD  R3, R2

#define SSTOREALL(LOAD) \
	SSTORE(LOAD, V0, V1, V2, V3); \
	SSTORE(LOAD, V4, V5, V6, V7); \
	SSTORE(LOAD, V8, V9, V10, V11); \
	SSTORE(LOAD, V12, V13, V14, V15); \
	SSTORE(LOAD, V16, V17, V18, V19); \
	SSTORE(LOAD, V20, V21, V22, V23)

// func sgemmKernelNEON(k int, a, b, c []float32, ldc int, alpha, beta float32)
TEXT ·sgemmKernelNEON(SB), NOSPLIT, $0-96
	MOVD k+0(FP), R4
	MOVD a_base+8(FP), R0
	MOVD b_base+32(FP), R1
	MOVD c_base+56(FP), R2
	MOVD ldc+80(FP), R3
	LSL  $2, R3
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	VEOR V6.B16, V6.B16, V6.B16
	VEOR V7.B16, V7.B16, V7.B16
	VEOR V8.B16, V8.B16, V8.B16
	VEOR V9.B16, V9.B16, V9.B16
	VEOR V10.B16, V10.B16, V10.B16
	VEOR V11.B16, V11.B16, V11.B16
	VEOR V12.B16, V12.B16, V12.B16
	VEOR V13.B16, V13.B16, V13.B16
	VEOR V14.B16, V14.B16, V14.B16
	VEOR V15.B16, V15.B16, V15.B16
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16
	VEOR V20.B16, V20.B16, V20.B16
	VEOR V21.B16, V21.B16, V21.B16
	VEOR V22.B16, V22.B16, V22.B16
	VEOR V23.B16, V23.B16, V23.B16

sgemm_loop2:
	CMP  $2, R4
	BLT  sgemm_tail
	SSTEP
	SSTEP
	SUB  $2, R4
	B    sgemm_loop2

sgemm_tail:
	CBZ  R4, sgemm_store
	SSTEP

sgemm_store:
	FMOVS alpha+88(FP), F30
	VDUP V30.S[0], V28.S4
	MOVWU beta+92(FP), R5
	FMOVS beta+92(FP), F30
	VDUP V30.S[0], V29.S4
	TSTW $0x7fffffff, R5
	BEQ  sgemm_beta0
	MOVW $0x3f800000, R6
	CMPW R6, R5
	BEQ  sgemm_beta1
	SSTOREALL(SLOADN)
	RET

sgemm_beta1:
	SSTOREALL(SLOAD1)
	RET

sgemm_beta0:
	SSTOREALL(SLOAD0)
	RET

// One k step of the 6×8 float64 kernel: A column in V28-V30 (two each),
// B row in V24-V27.
#define DROW(i, r, l) \
	FMLAD(r, l, 24, 4*i+0); \
	FMLAD(r, l, 25, 4*i+1); \
	FMLAD(r, l, 26, 4*i+2); \
	FMLAD(r, l, 27, 4*i+3)

#define DSTEP \
	VLD1.P 48(R0), [V28.D2, V29.D2, V30.D2]; \
	VLD1.P 64(R1), [V24.D2, V25.D2, V26.D2, V27.D2]; \
	DROW(0, 28, 0); \
	DROW(1, 28, 1); \
	DROW(2, 29, 0); \
	DROW(3, 29, 1); \
	DROW(4, 30, 0); \
	DROW(5, 30, 1)

#define DLOAD1 \
	VLD1 (R2), [V24.D2, V25.D2, V26.D2, V27.D2]

#define DLOAD0 SLOAD0

#define DLOADN \
	VLD1 (R2), [V24.D2, V25.D2, V26.D2, V27.D2]; \
	FMUL2D(29, 24, 24); \
	FMUL2D(29, 25, 25); \
	FMUL2D(29, 26, 26); \
	FMUL2D(29, 27, 27)

#define DSTORE(LOAD, a0, a1, a2, a3) \
	LOAD; \
	VFMLA a0.D2, V28.D2, V24.D2; \
	VFMLA a1.D2, V28.D2, V25.D2; \
	VFMLA a2.D2, V28.D2, V26.D2; \
	VFMLA a3.D2, V28.D2, V27.D2; \
	VST1 [V24.D2, V25.D2, V26.D2, V27.D2], (R2); \
	ADD  R3, R2

#define DSTOREALL(LOAD) \
	DSTORE(LOAD, V0, V1, V2, V3); \
	DSTORE(LOAD, V4, V5, V6, V7); \
	DSTORE(LOAD, V8, V9, V10, V11); \
	DSTORE(LOAD, V12, V13, V14, V15); \
	DSTORE(LOAD, V16, V17, V18, V19); \
	DSTORE(LOAD, V20, V21, V22, V23)

// func dgemmKernelNEON(k int, a, b, c []float64, ldc int, alpha, beta float64)
TEXT ·dgemmKernelNEON(SB), NOSPLIT, $0-104
	MOVD k+0(FP), R4
	MOVD a_base+8(FP), R0
	MOVD b_base+32(FP), R1
	MOVD c_base+56(FP), R2
	MOVD ldc+80(FP), R3
	LSL  $3, R3
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	VEOR V6.B16, V6.B16, V6.B16
	VEOR V7.B16, V7.B16, V7.B16
	VEOR V8.B16, V8.B16, V8.B16
	VEOR V9.B16, V9.B16, V9.B16
	VEOR V10.B16, V10.B16, V10.B16
	VEOR V11.B16, V11.B16, V11.B16
	VEOR V12.B16, V12.B16, V12.B16
	VEOR V13.B16, V13.B16, V13.B16
	VEOR V14.B16, V14.B16, V14.B16
	VEOR V15.B16, V15.B16, V15.B16
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16
	VEOR V20.B16, V20.B16, V20.B16
	VEOR V21.B16, V21.B16, V21.B16
	VEOR V22.B16, V22.B16, V22.B16
	VEOR V23.B16, V23.B16, V23.B16

dgemm_loop2:
	CMP  $2, R4
	BLT  dgemm_tail
	DSTEP
	DSTEP
	SUB  $2, R4
	B    dgemm_loop2

dgemm_tail:
	CBZ  R4, dgemm_store
	DSTEP

dgemm_store:
	FMOVD alpha+88(FP), F30
	VDUP V30.D[0], V28.D2
	MOVD beta+96(FP), R5
	FMOVD beta+96(FP), F30
	VDUP V30.D[0], V29.D2
	LSL  $1, R5, R6 // drop the sign: -0 counts as 0
	CBZ  R6, dgemm_beta0
	MOVD $0x3ff0000000000000, R6
	CMP  R6, R5
	BEQ  dgemm_beta1
	DSTOREALL(DLOADN)
	RET

dgemm_beta1:
	DSTOREALL(DLOAD1)
	RET

dgemm_beta0:
	DSTOREALL(DLOAD0)
	RET
