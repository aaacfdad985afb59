package owner

// Local is this host's process table. On Windows aidb does not read it:
// every other process counts as running (start time unknown), so another
// run's work is never taken for litter; a killed run's is left in place.
func Local() Processes { return procTable{} }

type procTable struct{}

func (procTable) StartTime(int) (uint64, bool) { return 0, true }
