package stackkit

import (
	"context"
	"fmt"
	"time"
)

// Poll calls check every interval until it returns nil, ctx ends or timeout passes; the error
// names what was awaited and the last failure. Every wait of the drivers and the suite is one.
func Poll(ctx context.Context, timeout, interval time.Duration, what string, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}
