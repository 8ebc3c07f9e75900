package cliflag

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
)

// A command's tests check real exit statuses by running their own test
// binary as the command: TestMain calls RunAsMainIf first, and the tests
// call RunSelf. No binary is built for it.

const selfRunEnv = "CLIFLAG_RUN_AS_MAIN"

// RunAsMainIf runs main as the program name (with the test binary's
// arguments) and exits 0 when this process was started by RunSelf;
// otherwise it returns at once.
func RunAsMainIf(name string, main func()) {
	if os.Getenv(selfRunEnv) != name {
		return
	}
	os.Args = append([]string{name}, os.Args[1:]...)
	main()
	os.Exit(0)
}

// RunSelf runs this test binary as the program name with args and extra
// environment, returning its exit status and output.
func RunSelf(name string, env []string, args ...string) (code int, stdout, stderr string, err error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), selfRunEnv+"="+name), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errb.String(), nil
	}
	return 0, out.String(), errb.String(), err
}
