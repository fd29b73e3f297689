package graph

// A permutation of a group of size n is a slice p of length n; applying it
// moves index p[i] of every member axis to index i (new[i] = old[p[i]]).

// WeightSite is one axis of one weight tensor as a particular node uses it.
// Sites are per use, not per tensor: exporters share initializers between
// layers, and two users of one tensor may need different permutations
// (permute.Apply then gives each its own copy).
type WeightSite struct {
	// Node is the index in Graph.Node of the node that reads the weight,
	// Input the index of that input; Value is the name it reads
	// (possibly the output of an Identity or Constant node).
	Node, Input int
	Value       string
	// Tensor is the initializer or Constant value the chain of Identity
	// nodes behind Value ends at; it holds the data.
	Tensor string
	// Axis is the permuted axis of the tensor (0-based, non-negative).
	Axis int
	// Block and Offset place the group on the axis: channel c of the group
	// occupies indices Offset + c*Block ... Offset + c*Block + Block-1.
	// Block is 1 except behind a Flatten (Block = H·W); Offset is 0 except
	// for the parts of a Concat.
	Block, Offset int
	// Statistic marks an input that holds statistics of the data rather
	// than learned weights (BatchNormalization's running mean and
	// variance): it is permuted with its channels but, as in the paper,
	// weight matching does not score it.
	Statistic bool
	// Within says that the axis holds the units of one block of the
	// group only (Size/Blocks of them: the weight of a grouped
	// convolution, which every block reads alike); it moves by the
	// within-block permutation, which all blocks share (SharedWithin).
	Within bool `json:"within,omitempty"`
	// Repeat, when above 1, says that the axis holds every block of the
	// group Repeat times in a row (the query heads of grouped-query
	// attention that share a K/V head): unit b·d+i (d = Size/Blocks
	// units per block, all of them when Blocks < 2) has copies j <
	// Repeat at index Offset + ((b·Repeat+j)·d+i)·Block, each of Block
	// indices, which all move with the unit.
	Repeat int `json:"repeat,omitempty"`
}

// ActivationSite is one axis of an intermediate value (a node output) that a
// group permutes; activation matching reads activations there.
type ActivationSite struct {
	Value         string
	Axis          int
	Block, Offset int
	// Repeat is as for WeightSite.
	Repeat int `json:"repeat,omitempty"`
}

// Group is one class of channel dimensions that must be permuted together.
type Group struct {
	ID          int
	Size        int
	Weights     []WeightSite
	Activations []ActivationSite
	// Blocks, when above 1, says the group is block-structured: its Size
	// units are Blocks blocks (attention heads) of Size/Blocks consecutive
	// units, and a permutation must move whole blocks: unit b·d+i goes to
	// σ(b)·d+τ_b(i), with one block permutation σ for every group of its
	// set (Analysis.BlockSets) and a permutation τ_b within each block.
	Blocks int `json:"blocks,omitempty"`
	// FixedWithin says that only whole blocks move: τ_b is the identity
	// (the input channels of a grouped convolution, whose weight every
	// block of channels reads alike).
	FixedWithin bool `json:"fixed_within,omitempty"`
	// SharedWithin says that every block moves its units by the same
	// permutation τ (the input channels of a grouped convolution: its
	// weight's Within site moves by τ).
	SharedWithin bool `json:"shared_within,omitempty"`
	// Repeated counts the units of other layers that move as copies of
	// this group's units (sites with Repeat > 1: the query heads of
	// grouped-query attention move with their K/V head, in order).
	Repeated int `json:"repeated,omitempty"`
	// Layers counts the layers whose weights compute the group's
	// channels: the Gemm, MatMul, Conv or ConvTranspose layers whose output
	// units they are, and depthwise convolutions that pass them on. A
	// plain layer's hidden units have one; a residual stream has one for
	// every layer that adds to it, and attention's queries and keys are
	// computed by two.
	Layers int `json:"layers,omitempty"`
	// Reasons lists what tied the members together, e.g.
	// `Add "/layer1/Add" ties its inputs (residual stream)`.
	Reasons []string
}

// FrozenAxis is an axis that must not be permuted, and why.
type FrozenAxis struct {
	Value  string // value or weight name
	Axis   int
	Size   int
	Reason string
}

// Restrict returns a copy of a with only the groups keep accepts, as if the
// others were frozen: group IDs are renumbered in order and block sets keep
// their remaining members. a is not changed.
func (a *Analysis) Restrict(keep func(g Group) bool) *Analysis {
	r := *a
	r.Groups, r.BlockSets, r.PermutableUnits = nil, nil, 0
	newID := map[int]int{}
	for _, g := range a.Groups {
		if !keep(g) {
			continue
		}
		newID[g.ID] = len(r.Groups)
		g.ID = len(r.Groups)
		r.Groups = append(r.Groups, g)
		r.PermutableUnits += g.Size + g.Repeated
	}
	for _, set := range a.BlockSets {
		var s []int
		for _, g := range set {
			if id, ok := newID[g]; ok {
				s = append(s, id)
			}
		}
		if len(s) > 0 {
			r.BlockSets = append(r.BlockSets, s)
		}
	}
	return &r
}
