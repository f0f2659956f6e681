package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// checkInterpreter reads the first line of a script plugin (a Python
// virtualenv's console script, a shell launcher) and checks that the
// interpreter it names exists and is executable. Without this the start
// fails with exec's ENOENT for the script's path, "no such file or
// directory", although the script is right there.
func checkInterpreter(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // reported by whoever starts it
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 512).ReadSlice('\n')
	if err != nil && len(line) == 0 || !bytes.HasPrefix(line, []byte("#!")) {
		return nil
	}
	fields := strings.Fields(string(bytes.TrimSpace(line[2:])))
	if len(fields) == 0 {
		return fmt.Errorf("plugin executable %s starts with #! but names no interpreter", path)
	}
	interp := fields[0]
	st, err := os.Stat(interp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("plugin executable %s names the interpreter %s on its first line, which does not exist "+
			"(a virtualenv that was moved or deleted? recreate it and reinstall the plugin, or fix that line)", path, interp)
	case err != nil:
		return fmt.Errorf("plugin executable %s: its interpreter %s: %w", path, interp, err)
	case st.IsDir() || st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("plugin executable %s names the interpreter %s on its first line, which is not an executable file", path, interp)
	}
	return nil
}
