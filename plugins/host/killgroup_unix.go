//go:build unix

package host

import (
	"errors"
	"syscall"
)

// killGroup SIGKILLs the process group led by pid. A group outlives its
// leader while any member lives, and its id is not reused meanwhile, so
// this reaches a dead plugin's leftover children and nothing else.
func killGroup(pid int) error {
	if pid <= 0 {
		return nil
	}
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
