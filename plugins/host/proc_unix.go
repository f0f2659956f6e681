//go:build unix && !linux

package host

import "syscall"

// sysProcAttr puts the plugin in its own process group so killing the group
// takes its children too. Without Pdeathsig, the SDK's exit-when-the-host-
// connection-closes guards against orphans.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
