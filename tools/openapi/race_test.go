//go:build race

package openapi

// raceEnabled says the race detector runs: its runtime needs address space
// of its own, and a checking process whose memory is bounded dies in its
// own words, not the Go runtime's.
const raceEnabled = true
