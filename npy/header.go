package npy

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// header is the parsed content of a .npy header dictionary.
type header struct {
	descr        string
	fortranOrder bool
	shape        []int
}

// maxDims bounds the number of dimensions accepted (numpy 2 allows 64).
const maxDims = 64

// parseHeader parses the Python dict literal that forms a .npy header, e.g.
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//
// Only the literal forms numpy writes are accepted: string keys, a string
// descr, a boolean fortran_order and a tuple of non-negative ints for shape.
func parseHeader(s string) (*header, error) {
	p := &hparser{s: s}
	h, err := p.dict()
	if err != nil {
		return nil, fmt.Errorf("npy: bad header %q: %w", abbrev(s), err)
	}
	return h, nil
}

func abbrev(s string) string {
	const n = 200
	s = strings.TrimRight(s, " \n\x00")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

type hparser struct {
	s   string
	pos int
}

func (p *hparser) ws() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *hparser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *hparser) expect(c byte) error {
	p.ws()
	if p.peek() != c {
		return p.errf("expected %q", c)
	}
	p.pos++
	return nil
}

func (p *hparser) errf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *hparser) dict() (*header, error) {
	if err := p.expect('{'); err != nil {
		return nil, err
	}
	h := &header{}
	seen := map[string]bool{}
	for {
		p.ws()
		if p.peek() == '}' {
			p.pos++
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, p.errf("duplicate key %q", key)
		}
		seen[key] = true
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		p.ws()
		switch key {
		case "descr":
			if c := p.peek(); c == '[' || c == '(' || c == '{' {
				return nil, errors.New("structured dtypes are not supported")
			}
			if h.descr, err = p.str(); err != nil {
				return nil, err
			}
		case "fortran_order":
			if h.fortranOrder, err = p.boolean(); err != nil {
				return nil, err
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return nil, err
			}
		default:
			return nil, p.errf("unexpected key %q", key)
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
		default:
			return nil, p.errf("expected ',' or '}'")
		}
	}
	p.ws()
	if rest := strings.TrimRight(p.s[p.pos:], " \x00"); rest != "" {
		return nil, p.errf("trailing data after dictionary")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return nil, fmt.Errorf("missing key %q", k)
		}
	}
	return h, nil
}

func (p *hparser) str() (string, error) {
	p.ws()
	q := p.peek()
	if q != '\'' && q != '"' {
		return "", p.errf("expected string")
	}
	p.pos++
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] != q {
		switch p.s[p.pos] {
		case '\n':
			return "", p.errf("unterminated string")
		case '\\':
			return "", p.errf("escapes in strings are not supported")
		}
		p.pos++
	}
	if p.pos >= len(p.s) {
		return "", p.errf("unterminated string")
	}
	v := p.s[start:p.pos]
	p.pos++
	return v, nil
}

func (p *hparser) boolean() (bool, error) {
	switch {
	case strings.HasPrefix(p.s[p.pos:], "True"):
		p.pos += 4
		return true, nil
	case strings.HasPrefix(p.s[p.pos:], "False"):
		p.pos += 5
		return false, nil
	}
	return false, p.errf("expected True or False")
}

// tuple parses "()", "(3,)", "(2, 3)" and tolerates Python 2 long suffixes
// ("(2L, 3L)") that very old files carry.
func (p *hparser) tuple() ([]int, error) {
	if err := p.expect('('); err != nil {
		return nil, err
	}
	shape := []int{}
	for {
		p.ws()
		if p.peek() == ')' {
			p.pos++
			break
		}
		n, err := p.integer()
		if err != nil {
			return nil, err
		}
		if len(shape) == maxDims {
			return nil, p.errf("more than %d dimensions", maxDims)
		}
		shape = append(shape, n)
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case ')':
		default:
			return nil, p.errf("expected ',' or ')'")
		}
	}
	return shape, nil
}

func (p *hparser) integer() (int, error) {
	start := p.pos
	n := 0
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		d := int(p.s[p.pos] - '0')
		if n > (math.MaxInt-d)/10 {
			return 0, p.errf("dimension too large")
		}
		n = n*10 + d
		p.pos++
	}
	if p.pos == start {
		return 0, p.errf("expected non-negative integer")
	}
	if p.peek() == 'L' {
		p.pos++
	}
	return n, nil
}

// formatHeader returns the header dictionary exactly as numpy writes it.
func formatHeader(d DType, shape []int) string {
	var b strings.Builder
	b.WriteString("{'descr': '")
	b.WriteString(string(d))
	b.WriteString("', 'fortran_order': False, 'shape': (")
	for i, n := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d", n)
	}
	if len(shape) == 1 {
		b.WriteString(",")
	}
	b.WriteString("), }")
	return b.String()
}
