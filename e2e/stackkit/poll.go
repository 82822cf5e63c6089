package stackkit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Poll calls check every interval until it returns nil, ctx ends or timeout passes; the error
// names what was awaited and the last failure. A check that returns an error made by Permanent
// ends the wait at once with that error: what is awaited can no longer come (the process
// exited, the answer will not change). Every wait of the drivers and the suite is one.
func Poll(ctx context.Context, timeout, interval time.Duration, what string, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// Permanent marks err as the end of a Poll: it returns err (unwrapped) at once.
func Permanent(err error) error { return permanent{err} }

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }
