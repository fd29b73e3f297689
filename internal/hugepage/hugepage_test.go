package hugepage

import (
	"testing"
	"unsafe"
)

// TestMake checks that Make behaves as make: the length and capacity asked
// for, zeroed, writable to the end, and that large buffers start on a huge
// page boundary.
func TestMake(t *testing.T) {
	for _, tc := range []struct {
		n       int
		aligned bool
	}{
		{0, false},
		{1, false},
		{Size/4 - 1, false},
		{Size / 4, true}, // float32: exactly one huge page
		{Size/4 + 3, true},
		{5 * Size / 4, true},
	} {
		s := Make[float32](tc.n)
		if len(s) != tc.n || cap(s) != tc.n {
			t.Fatalf("n=%d: len %d cap %d", tc.n, len(s), cap(s))
		}
		for i, v := range s {
			if v != 0 {
				t.Fatalf("n=%d: s[%d] = %v, want 0", tc.n, i, v)
			}
		}
		for i := range s {
			s[i] = float32(i)
		}
		if tc.aligned && uintptr(unsafe.Pointer(&s[0]))%Size != 0 {
			t.Errorf("n=%d: starts at %p, not on a huge page boundary", tc.n, &s[0])
		}
	}
	if b := Make[byte](3 * Size); len(b) != 3*Size || uintptr(unsafe.Pointer(&b[0]))%Size != 0 {
		t.Errorf("bytes: len %d at %p", len(b), &b[0])
	}
}
