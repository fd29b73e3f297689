//go:build !noasm && !appengine && !gccgo

#include "textflag.h"

DATA laneIdx<>+0(SB)/8, $0
DATA laneIdx<>+8(SB)/8, $1
DATA laneIdx<>+16(SB)/8, $2
DATA laneIdx<>+24(SB)/8, $3
DATA laneIdx<>+32(SB)/8, $4
DATA laneIdx<>+40(SB)/8, $5
DATA laneIdx<>+48(SB)/8, $6
DATA laneIdx<>+56(SB)/8, $7
GLOBL laneIdx<>(SB), RODATA|NOPTR, $64

DATA eight<>+0(SB)/8, $8
GLOBL eight<>(SB), RODATA|NOPTR, $8

DATA posInf<>+0(SB)/8, $0x7ff0000000000000
GLOBL posInf<>(SB), RODATA|NOPTR, $8

// func relaxAVX2(row, v, d *float64, pred *int32, n int, i int32, off float64, vals *[8]float64, idxs *[8]int64)
//
// n is a multiple of 8. Per group of 8 columns k..k+7, as two vectors A
// (k..k+3) and B (k+4..k+7):
//	h = (v − row) + off          (the same IEEE operations as the Go loop)
//	m = h < d                    (rare late in a search, so a branch)
//	d = m ? h : d, pred = m ? i : pred
//	lane minima: best = d < best ? d : best, with its index (strict <, so
//	each of the 8 lanes keeps its lowest index on ties)
// A and B keep separate minima so that the two compare-blend chains, which
// carry a dependency from one group to the next, run in parallel.
//
// Registers: Y0 off; Y1,Y9 h; Y2,Y10 d; Y3,Y11 masks; Y4,Y14 lane minima;
// Y6,Y15 their indices; Y7,Y13 current indices; Y8 eight; Y5,Y12 scratch.
TEXT ·relaxAVX2(SB), NOSPLIT, $0-72
	MOVQ row+0(FP), SI
	MOVQ v+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ pred+24(FP), R8
	MOVQ n+32(FP), CX
	MOVL i+40(FP), R9
	VBROADCASTSD off+48(FP), Y0
	VBROADCASTSD posInf<>(SB), Y4
	VMOVAPD Y4, Y14
	VPXOR Y6, Y6, Y6
	VPXOR Y15, Y15, Y15
	VMOVDQU laneIdx<>+0(SB), Y7
	VMOVDQU laneIdx<>+32(SB), Y13
	VPBROADCASTQ eight<>(SB), Y8
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JAE done
	VMOVUPD (DI)(BX*8), Y1
	VMOVUPD 32(DI)(BX*8), Y9
	VSUBPD (SI)(BX*8), Y1, Y1
	VSUBPD 32(SI)(BX*8), Y9, Y9
	VADDPD Y0, Y1, Y1
	VADDPD Y0, Y9, Y9
	VMOVUPD (DX)(BX*8), Y2
	VMOVUPD 32(DX)(BX*8), Y10
	VCMPPD $0x11, Y2, Y1, Y3          // h < d (LT_OQ)
	VCMPPD $0x11, Y10, Y9, Y11
	VORPD Y3, Y11, Y12
	VPTEST Y12, Y12
	JNE improve

next:
	VCMPPD $0x11, Y4, Y2, Y5          // d < best
	VCMPPD $0x11, Y14, Y10, Y12
	VBLENDVPD Y5, Y2, Y4, Y4
	VBLENDVPD Y12, Y10, Y14, Y14
	VBLENDVPD Y5, Y7, Y6, Y6
	VBLENDVPD Y12, Y13, Y15, Y15
	VPADDQ Y8, Y7, Y7
	VPADDQ Y8, Y13, Y13
	ADDQ $8, BX
	JMP loop

improve:
	VBLENDVPD Y3, Y1, Y2, Y2
	VBLENDVPD Y11, Y9, Y10, Y10
	VMOVUPD Y2, (DX)(BX*8)
	VMOVUPD Y10, 32(DX)(BX*8)
	VMOVMSKPD Y3, AX
	VMOVMSKPD Y11, R10
	SHLL $4, R10
	ORL R10, AX                       // bit l set: column k+l improved

predBits:
	BSFL AX, R10
	LEAQ (BX)(R10*1), R11
	MOVL R9, (R8)(R11*4)
	LEAL -1(AX), R10
	ANDL R10, AX                      // clear the lowest set bit
	JNE predBits
	JMP next

done:
	MOVQ vals+56(FP), AX
	VMOVUPD Y4, (AX)
	VMOVUPD Y14, 32(AX)
	MOVQ idxs+64(FP), AX
	VMOVDQU Y6, (AX)
	VMOVDQU Y15, 32(AX)
	VZEROUPPER
	RET

// func twoMinAVX2(row, v *float64, n int, vals *[16]float64, idxs *[16]int64)
//
// Per group of 8 columns, as vectors A (k..k+3) and B (k+4..k+7), each
// lane keeps its two smallest (value, index) pairs (m1,i1) ≤ (m2,i2):
//	h = v − row
//	lt1 = h < m1, lt2 = h < m2
//	m2,i2 = lt2 ? h,idx : m2,i2;  m2,i2 = lt1 ? m1,i1 : m2,i2
//	m1,i1 = lt1 ? h,idx : m1,i1
// Strict comparisons in index order keep the lowest index on ties, as in
// the Go loop.
//
// Registers: A: Y1 h, Y2 m1, Y3 i1, Y4 m2, Y5 i2, Y6 idx; B: Y9 h, Y10 m1,
// Y11 i1, Y12 m2, Y13 i2, Y14 idx; Y7, Y8 masks; Y15 eight.
TEXT ·twoMinAVX2(SB), NOSPLIT, $0-40
	MOVQ row+0(FP), SI
	MOVQ v+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSD posInf<>(SB), Y2
	VMOVAPD Y2, Y4
	VMOVAPD Y2, Y10
	VMOVAPD Y2, Y12
	VPXOR Y3, Y3, Y3
	VPXOR Y5, Y5, Y5
	VPXOR Y11, Y11, Y11
	VPXOR Y13, Y13, Y13
	VMOVDQU laneIdx<>+0(SB), Y6
	VMOVDQU laneIdx<>+32(SB), Y14
	VPBROADCASTQ eight<>(SB), Y15
	XORQ BX, BX

twoLoop:
	CMPQ BX, CX
	JAE twoDone
	VMOVUPD (DI)(BX*8), Y1
	VSUBPD (SI)(BX*8), Y1, Y1
	VCMPPD $0x11, Y2, Y1, Y7
	VCMPPD $0x11, Y4, Y1, Y8
	VBLENDVPD Y8, Y1, Y4, Y4
	VBLENDVPD Y8, Y6, Y5, Y5
	VBLENDVPD Y7, Y2, Y4, Y4
	VBLENDVPD Y7, Y3, Y5, Y5
	VBLENDVPD Y7, Y1, Y2, Y2
	VBLENDVPD Y7, Y6, Y3, Y3

	VMOVUPD 32(DI)(BX*8), Y9
	VSUBPD 32(SI)(BX*8), Y9, Y9
	VCMPPD $0x11, Y10, Y9, Y7
	VCMPPD $0x11, Y12, Y9, Y8
	VBLENDVPD Y8, Y9, Y12, Y12
	VBLENDVPD Y8, Y14, Y13, Y13
	VBLENDVPD Y7, Y10, Y12, Y12
	VBLENDVPD Y7, Y11, Y13, Y13
	VBLENDVPD Y7, Y9, Y10, Y10
	VBLENDVPD Y7, Y14, Y11, Y11

	VPADDQ Y15, Y6, Y6
	VPADDQ Y15, Y14, Y14
	ADDQ $8, BX
	JMP twoLoop

twoDone:
	MOVQ vals+24(FP), AX
	VMOVUPD Y2, (AX)
	VMOVUPD Y10, 32(AX)
	VMOVUPD Y4, 64(AX)
	VMOVUPD Y12, 96(AX)
	MOVQ idxs+32(FP), AX
	VMOVDQU Y3, (AX)
	VMOVDQU Y11, 32(AX)
	VMOVDQU Y5, 64(AX)
	VMOVDQU Y13, 96(AX)
	VZEROUPPER
	RET

// func colMaxAVX2(row, vmax *float64, arg *int32, n int, i int32, acc *[4]float64)
//
// Per group of 8 entries, as vectors A (k..k+3) and B (k+4..k+7):
//	acc += A*A; acc += B*B     (lane l sums entries ≡ l mod 4 in order)
//	m = row > vmax             (rare after the first rows, so a branch)
//	vmax = m ? row : vmax, arg = m ? i : arg
//
// Registers: Y0 acc; Y1,Y2 row; Y3,Y4 vmax; Y5,Y6 masks; Y7,Y8 scratch.
TEXT ·colMaxAVX2(SB), NOSPLIT, $0-48
	MOVQ row+0(FP), SI
	MOVQ vmax+8(FP), DI
	MOVQ arg+16(FP), R8
	MOVQ n+24(FP), CX
	MOVL i+32(FP), R9
	MOVQ acc+40(FP), DX
	VMOVUPD (DX), Y0
	XORQ BX, BX

cmLoop:
	CMPQ BX, CX
	JAE cmDone
	VMOVUPD (SI)(BX*8), Y1
	VMOVUPD 32(SI)(BX*8), Y2
	VMULPD Y1, Y1, Y7
	VADDPD Y7, Y0, Y0
	VMULPD Y2, Y2, Y8
	VADDPD Y8, Y0, Y0
	VMOVUPD (DI)(BX*8), Y3
	VMOVUPD 32(DI)(BX*8), Y4
	VCMPPD $0x1e, Y3, Y1, Y5          // row > vmax (GT_OQ)
	VCMPPD $0x1e, Y4, Y2, Y6
	VORPD Y5, Y6, Y7
	VPTEST Y7, Y7
	JNE cmImprove

cmNext:
	ADDQ $8, BX
	JMP cmLoop

cmImprove:
	VBLENDVPD Y5, Y1, Y3, Y3
	VBLENDVPD Y6, Y2, Y4, Y4
	VMOVUPD Y3, (DI)(BX*8)
	VMOVUPD Y4, 32(DI)(BX*8)
	VMOVMSKPD Y5, AX
	VMOVMSKPD Y6, R10
	SHLL $4, R10
	ORL R10, AX

cmBits:
	BSFL AX, R10
	LEAQ (BX)(R10*1), R11
	MOVL R9, (R8)(R11*4)
	LEAL -1(AX), R10
	ANDL R10, AX
	JNE cmBits
	JMP cmNext

cmDone:
	VMOVUPD Y0, (DX)
	VZEROUPPER
	RET

// func rowMinAVX2(row, v *float64, n int, vals *[8]float64, idxs *[8]int64, acc *[4]float64)
//
// Per group of 8 entries, as vectors A (k..k+3) and B (k+4..k+7):
//	acc += A*A; acc += B*B
//	h = v − row; lane minima with their lowest indices (strict <)
//
// Registers: Y0 acc; Y1,Y2 row; Y3,Y9 h; Y4,Y14 minima; Y6,Y15 indices;
// Y7,Y13 current indices; Y8 eight; Y5,Y10,Y11,Y12 scratch.
TEXT ·rowMinAVX2(SB), NOSPLIT, $0-48
	MOVQ row+0(FP), SI
	MOVQ v+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ acc+40(FP), DX
	VMOVUPD (DX), Y0
	VBROADCASTSD posInf<>(SB), Y4
	VMOVAPD Y4, Y14
	VPXOR Y6, Y6, Y6
	VPXOR Y15, Y15, Y15
	VMOVDQU laneIdx<>+0(SB), Y7
	VMOVDQU laneIdx<>+32(SB), Y13
	VPBROADCASTQ eight<>(SB), Y8
	XORQ BX, BX

rmLoop:
	CMPQ BX, CX
	JAE rmDone
	VMOVUPD (SI)(BX*8), Y1
	VMOVUPD 32(SI)(BX*8), Y2
	VMULPD Y1, Y1, Y10
	VADDPD Y10, Y0, Y0
	VMULPD Y2, Y2, Y11
	VADDPD Y11, Y0, Y0
	VMOVUPD (DI)(BX*8), Y3
	VMOVUPD 32(DI)(BX*8), Y9
	VSUBPD Y1, Y3, Y3
	VSUBPD Y2, Y9, Y9
	VCMPPD $0x11, Y4, Y3, Y5
	VCMPPD $0x11, Y14, Y9, Y12
	VBLENDVPD Y5, Y3, Y4, Y4
	VBLENDVPD Y12, Y9, Y14, Y14
	VBLENDVPD Y5, Y7, Y6, Y6
	VBLENDVPD Y12, Y13, Y15, Y15
	VPADDQ Y8, Y7, Y7
	VPADDQ Y8, Y13, Y13
	ADDQ $8, BX
	JMP rmLoop

rmDone:
	VMOVUPD Y0, (DX)
	MOVQ vals+24(FP), AX
	VMOVUPD Y4, (AX)
	VMOVUPD Y14, 32(AX)
	MOVQ idxs+32(FP), AX
	VMOVDQU Y6, (AX)
	VMOVDQU Y15, 32(AX)
	VZEROUPPER
	RET
