package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/sluicedev/sluice/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError is a problem with the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// reportedError carries an exit code for a failure already reported (run
// logs its runtime errors through the configured logger, so JSON logs stay
// JSON).
type reportedError struct {
	code int
	err  error
}

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var (
		usage    *usageError
		cfg      config.Errors
		reported *reportedError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &reported):
		return reported.code
	case errors.As(err, &usage), errors.As(err, &cfg):
		return exitUsage
	default:
		return exitRuntime
	}
}

// reportError prints what was not printed yet: config errors one per line
// as file:line:col: message, anything else prefixed with the program name.
func reportError(w io.Writer, err error) {
	var (
		cfg      config.Errors
		reported *reportedError
	)
	switch {
	case err == nil, errors.As(err, &reported):
	case errors.As(err, &cfg):
		fmt.Fprintln(w, cfg.Error())
	default:
		fmt.Fprintln(w, "sluice:", err)
	}
}
