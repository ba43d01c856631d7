//go:build race

package wsgi

// raceEnabled: the race detector inflates memory figures.
const raceEnabled = true
