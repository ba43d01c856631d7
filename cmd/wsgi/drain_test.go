package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestShutdownFailed: Shutdown's error after a drain (a listener the drain
// closed, found closed again) is no failure; a grace period that ran out
// is.
func TestShutdownFailed(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"clean", nil, false},
		{"listener closed by the drain (file)", fmt.Errorf("close listener: %w", os.ErrClosed), false},
		{"listener closed by the drain (socket)", &net.OpError{Op: "close", Net: "tcp", Err: net.ErrClosed}, false},
		{"grace period over", context.DeadlineExceeded, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, shutdownFailed(tt.err))
		})
	}
}
