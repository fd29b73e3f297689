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
}

// ActivationSite is one axis of an intermediate value (a node output) that a
// group permutes; activation matching reads activations there.
type ActivationSite struct {
	Value         string
	Axis          int
	Block, Offset int
}

// Group is one class of channel dimensions that must be permuted together.
type Group struct {
	ID          int
	Size        int
	Weights     []WeightSite
	Activations []ActivationSite
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
