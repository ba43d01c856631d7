//go:build !race

package wsgi

const raceEnabled = false
