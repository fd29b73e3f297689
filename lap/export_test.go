package lap

// SetTunables lets experiments vary the initialisation; it returns a func
// restoring the previous values.
func SetTunables(passes, budget, list, warmPasses int) func() {
	p, b, l, w := arrPasses, arrBudget, listAfter, warmARRPasses
	arrPasses, arrBudget, listAfter, warmARRPasses = passes, budget, list, warmPasses
	return func() { arrPasses, arrBudget, listAfter, warmARRPasses = p, b, l, w }
}
