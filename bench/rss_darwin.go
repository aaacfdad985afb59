package main

import (
	"os"
	"syscall"
)

// rssMeasured says whether peakRSSMB reads anything on this system.
const rssMeasured = true

// peakRSSMB is a finished process's peak resident memory in MB.
func peakRSSMB(ps *os.ProcessState) float64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / (1 << 20) // bytes on macOS
	}
	return 0
}
