package infer

import "fmt"

// UnsupportedError reports a model feature the interpreter does not
// implement: an operator, an attribute value or an element type. NewSession
// returns it (wrapped in nothing) before anything is run, so callers can tell
// "cannot run this model" from a malformed model with errors.As.
type UnsupportedError struct {
	Op   string // operator type, "" when not about a node
	Node string // node name, or "#index" for unnamed nodes
	What string // what is unsupported
}

func (e *UnsupportedError) Error() string {
	if e.Op == "" {
		return "infer: unsupported " + e.What
	}
	return fmt.Sprintf("infer: %s node %q: unsupported %s", e.Op, e.Node, e.What)
}
