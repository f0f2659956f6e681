package host

import "syscall"

// sysProcAttr puts the plugin in its own process group (so killing the
// group takes its children too) and asks the kernel to SIGKILL it if the
// host dies. Pdeathsig is tied to the thread that forked, not the process;
// the Go runtime only retires threads of goroutines that exit while locked
// to them, which sluice never does, and the SDK's own check covers the rest.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
