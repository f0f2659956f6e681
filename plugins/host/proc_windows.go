package host

import "syscall"

// Windows has no process groups to kill or parent-death signal; the SDK's
// exit-when-the-host-connection-closes guards against orphans.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) error { return nil }
