package host

import "github.com/sluicedev/sluice/flow"

// SetRestartBackoff replaces the restart backoff for a test; the returned
// func puts the old one back.
func SetRestartBackoff(b flow.Backoff) func() {
	old := restartBackoff
	restartBackoff = b
	return func() { restartBackoff = old }
}
