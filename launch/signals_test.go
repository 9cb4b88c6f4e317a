package launch

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignalFloodKeepsSIGTERM: while the supervisor reads no signal (a long teardown), a flood
// of SIGCHLD and SIGWINCH must not crowd out the SIGTERM that follows it.
func TestSignalFloodKeepsSIGTERM(t *testing.T) {
	sigs, stop := notifySignals()
	defer stop()
	for i := 0; i < 100; i++ {
		unix.Kill(os.Getpid(), unix.SIGCHLD)
		unix.Kill(os.Getpid(), unix.SIGWINCH)
		time.Sleep(200 * time.Microsecond) // let package signal hand each one on
	}
	unix.Kill(os.Getpid(), unix.SIGTERM)
	select {
	case sig := <-sigs.stop:
		if sig != unix.SIGTERM {
			t.Errorf("stop channel got %v, want SIGTERM", sig)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("SIGTERM after a flood of SIGCHLD and SIGWINCH was dropped")
	}
}
