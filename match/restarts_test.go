package match

import (
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// TestRestarts checks Options.Restarts on the BatchNorm CNN pair, where
// descents from different starts and visiting orders end in different local
// optima: the first descent is the one without restarts, every restart is a
// descent from the identity in an order of its own, and the result is the
// descent with the highest final objective.
func TestRestarts(t *testing.T) {
	a, ga := testkit.LoadAnalyze(t, "../testmodels/cnn_bn_s0.onnx")
	b, _ := testkit.LoadAnalyze(t, "../testmodels/cnn_bn_s1.onnx")
	const seed, restarts = 0, 3
	plain, err := Weights(a, b, ga, Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Descents != nil {
		t.Fatalf("no restarts: Descents %v, want nil", plain.Descents)
	}
	res, err := Weights(a, b, ga, Options{Seed: seed, Restarts: restarts})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Descents) != restarts+1 {
		t.Fatalf("%d descents, want %d", len(res.Descents), restarts+1)
	}
	if res.Descents[0] != plain.ObjectiveAfter {
		t.Fatalf("first descent ends at %v, without restarts %v", res.Descents[0], plain.ObjectiveAfter)
	}
	if best := slices.Max(res.Descents); res.ObjectiveAfter != best {
		t.Fatalf("kept objective %v, best descent %v", res.ObjectiveAfter, best)
	}
	// On this pair (seed 0) the first descent, from the identity start
	// (StartAuto's on a plain CNN), ends at 121.675 and some restart higher.
	if !(res.ObjectiveAfter > plain.ObjectiveAfter) {
		t.Fatalf("restarts found nothing better than %v: %v", plain.ObjectiveAfter, res.Descents)
	}
	if err := res.Perms.Check(ga); err != nil {
		t.Fatal(err)
	}
	// The kept permutations are those of their descent: the objective
	// recomputed from them, and the same result again.
	mt, err := newMatcher(a, b, ga)
	if err != nil {
		t.Fatal(err)
	}
	if o := mt.objective(res.Perms); o != res.ObjectiveAfter {
		t.Fatalf("objective of the kept permutations %v, reported %v", o, res.ObjectiveAfter)
	}
	again, err := Weights(a, b, ga, Options{Seed: seed, Restarts: restarts})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Descents, res.Descents) || !permsEqual(again.Perms, res.Perms) {
		t.Fatalf("not deterministic: %v then %v", res.Descents, again.Descents)
	}
	// Restart r is a descent from the identity: restart 1 with the
	// identity start ends where an identity-start descent on stream 1 does.
	one, err := descend(a, b, ga, Options{Seed: seed, Start: StartIdentity}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Descents[1] != one.ObjectiveAfter {
		t.Fatalf("restart 1 ends at %v, an identity descent on stream 1 at %v", res.Descents[1], one.ObjectiveAfter)
	}
	if _, err := Weights(a, b, ga, Options{Restarts: -1}); err == nil {
		t.Fatal("negative Restarts accepted")
	}
}

func permsEqual(p, q permute.Perms) bool {
	return slices.EqualFunc(p, q, func(x, y []int) bool { return slices.Equal(x, y) })
}

// TestStartAuto checks that StartAuto is the identity start on plain stacks
// of layers and the signature start where several layers compute a group,
// and that it is exactly the descent of the start it resolves to.
func TestStartAuto(t *testing.T) {
	for _, tc := range []struct {
		pair string
		want Start
	}{
		{"mlp32", StartIdentity},
		{"cnn_bn", StartIdentity},
		{"resnet", StartSignature},
		{"transformer", StartSignature},
	} {
		a, ga := testkit.LoadAnalyze(t, "../testmodels/"+tc.pair+"_s0.onnx")
		b, _ := testkit.LoadAnalyze(t, "../testmodels/"+tc.pair+"_s1.onnx")
		auto, err := Weights(a, b, ga, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if auto.Start != tc.want {
			t.Errorf("%s: started from %v, want %v", tc.pair, auto.Start, tc.want)
		}
		explicit, err := Weights(a, b, ga, Options{Start: tc.want})
		if err != nil {
			t.Fatal(err)
		}
		if explicit.Start != tc.want || explicit.ObjectiveAfter != auto.ObjectiveAfter || !permsEqual(explicit.Perms, auto.Perms) {
			t.Errorf("%s: auto ends at %v, --start %v at %v", tc.pair, auto.ObjectiveAfter, tc.want, explicit.ObjectiveAfter)
		}
		other := StartSignature + StartIdentity - tc.want
		alt, err := Weights(a, b, ga, Options{Start: other})
		if err != nil {
			t.Fatal(err)
		}
		// The two starts end in different optima on each of these pairs
		// (seed 0), so the resolved start is the one that ran.
		if alt.Start != other || alt.ObjectiveAfter == auto.ObjectiveAfter {
			t.Errorf("%s: %v start ends at %v, as the %v start does", tc.pair, other, alt.ObjectiveAfter, tc.want)
		}
	}
}
