package npy

import "fmt"

// DType is a NumPy array-protocol type string in the canonical form this
// package uses: a byte-order character ('<' for multi-byte types, '|' for
// single-byte types) followed by a kind character and the item size in bytes,
// e.g. "<f4" or "|u1". Arrays read by this package always hold little-endian
// data, so their DType never starts with '>'.
type DType string

// The data types this package understands.
const (
	Bool    DType = "|b1"
	Int8    DType = "|i1"
	Uint8   DType = "|u1"
	Int16   DType = "<i2"
	Uint16  DType = "<u2"
	Int32   DType = "<i4"
	Uint32  DType = "<u4"
	Int64   DType = "<i8"
	Uint64  DType = "<u8"
	Float16 DType = "<f2"
	Float32 DType = "<f4"
	Float64 DType = "<f8"
)

// dtypeInfo describes one supported type: its kind ('b', 'i', 'u', 'f') and
// item size in bytes.
type dtypeInfo struct {
	kind byte
	size int
}

var dtypes = map[DType]dtypeInfo{
	Bool:    {'b', 1},
	Int8:    {'i', 1},
	Uint8:   {'u', 1},
	Int16:   {'i', 2},
	Uint16:  {'u', 2},
	Int32:   {'i', 4},
	Uint32:  {'u', 4},
	Int64:   {'i', 8},
	Uint64:  {'u', 8},
	Float16: {'f', 2},
	Float32: {'f', 4},
	Float64: {'f', 8},
}

// ItemSize returns the size in bytes of one element of type d, or 0 if d is
// not a supported type.
func (d DType) ItemSize() int {
	return dtypes[d].size
}

// Name returns numpy's name for d ("float32", "uint8", ...), or d itself if
// it is not a supported type.
func (d DType) Name() string {
	info, ok := dtypes[d]
	if !ok {
		return string(d)
	}
	if info.kind == 'b' {
		return "bool"
	}
	return fmt.Sprintf("%s%d", map[byte]string{'i': "int", 'u': "uint", 'f': "float"}[info.kind], 8*info.size)
}

// Valid reports whether d is one of the supported canonical types.
func (d DType) Valid() bool {
	_, ok := dtypes[d]
	return ok
}

// parseDescr turns a header 'descr' string into a canonical DType and
// reports whether the stored data is big-endian (and so must be byte-swapped).
func parseDescr(s string) (d DType, bigEndian bool, err error) {
	if len(s) < 3 {
		return "", false, fmt.Errorf("npy: unsupported dtype %q", s)
	}
	order, rest := s[0], s[1:]
	switch order {
	case '<', '|', '>', '=':
	default:
		return "", false, fmt.Errorf("npy: unsupported dtype %q", s)
	}
	// Find the canonical type with this kind and size.
	for _, prefix := range []string{"<", "|"} {
		if c := DType(prefix + rest); c.Valid() {
			d = c
			break
		}
	}
	if d == "" {
		return "", false, fmt.Errorf("npy: unsupported dtype %q", s)
	}
	size := d.ItemSize()
	switch {
	case size == 1:
		// Byte order is meaningless for single-byte types; numpy writes '|'
		// but accepts any.
	case order == '|':
		return "", false, fmt.Errorf("npy: dtype %q: multi-byte type without byte order", s)
	case order == '>':
		bigEndian = true
	case order == '=':
		// "native" order: numpy itself never writes it into a file; treat
		// it as little-endian, the order of every platform numpy files
		// come from in practice.
	}
	return d, bigEndian, nil
}
