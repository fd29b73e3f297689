package graph

import "fmt"

// An element is one channel dimension the analysis reasons about: an axis
// of an activation (or a block-structured part of one), or an axis of one
// use of a weight (a site). Union-find joins elements that must be
// permuted together; a class is frozen when any member must not move.
type element struct {
	parent int
	size   int64 // channels in the class, dimUnknown if not known yet
	site   *WeightSite

	// Valid at the root of a class:
	frozen    bool
	why       string // first reason the class was frozen
	whyValue  string // the value (or weight) and axis the freeze applied to
	whyAxis   int
	io        bool     // the class holds an axis of a graph input or output
	units     bool     // the class is the output units of a layer
	layers    int      // layers whose weights compute the class's channels (Group.Layers)
	hasSite   bool     // the class holds a weight site
	reasons   []string // what tied the members, in order, may repeat
	firstNode int      // first node (topological position) that touched it
}

type unionFind struct {
	els []element
}

// add makes a new singleton class. pos is the topological position of the
// node that creates it, used to order groups.
func (u *unionFind) add(size int64, site *WeightSite, pos int) int {
	id := len(u.els)
	u.els = append(u.els, element{parent: id, size: size, site: site, hasSite: site != nil, firstNode: pos})
	return id
}

func (u *unionFind) find(x int) int {
	for u.els[x].parent != x {
		u.els[x].parent = u.els[u.els[x].parent].parent // path halving
		x = u.els[x].parent
	}
	return x
}

// union joins the classes of a and b; reason says why (empty: no new
// information worth listing). Two classes of different known sizes cannot
// be one class: that is an inconsistency in the model or the rules.
func (u *unionFind) union(a, b int, reason string) error {
	ra, rb := u.find(a), u.find(b)
	if ra == rb {
		return nil
	}
	ea, eb := &u.els[ra], &u.els[rb]
	if isStatic(ea.size) && isStatic(eb.size) && ea.size != eb.size {
		return fmt.Errorf("%w: %s ties %d channels to %d channels", ErrShape, reason, ea.size, eb.size)
	}
	// Keep the older root so that reasons read in graph order.
	if rb < ra {
		ra, rb = rb, ra
		ea, eb = eb, ea
	}
	eb.parent = ra
	if !isStatic(ea.size) {
		ea.size = eb.size
	}
	if !ea.frozen && eb.frozen {
		ea.frozen, ea.why, ea.whyValue, ea.whyAxis = true, eb.why, eb.whyValue, eb.whyAxis
	}
	ea.io = ea.io || eb.io
	ea.units = ea.units || eb.units
	ea.layers += eb.layers
	ea.hasSite = ea.hasSite || eb.hasSite
	ea.firstNode = min(ea.firstNode, eb.firstNode)
	ea.reasons = append(ea.reasons, eb.reasons...)
	eb.reasons = nil
	if reason != "" {
		ea.reasons = append(ea.reasons, reason)
	}
	return nil
}

// freeze marks x's class as not permutable; the first reason sticks.
func (u *unionFind) freeze(x int, value string, axis int, why string, io bool) {
	r := &u.els[u.find(x)]
	if !r.frozen {
		r.frozen, r.why, r.whyValue, r.whyAxis = true, why, value, axis
	}
	r.io = r.io || io
}

// root returns the root element of x's class.
func (u *unionFind) root(x int) *element { return &u.els[u.find(x)] }
