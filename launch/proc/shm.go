package proc

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ShmDir is where POSIX shared memory lives (shm_open(3)): Chromium, puppeteer's workers,
// Python's multiprocessing.shared_memory and PostgreSQL's dynamic shared memory write there.
const ShmDir = "/dev/shm"

// Shm is a generation's private /dev/shm: a tmpfs that only the generation's processes see.
//
// The kernel charges a tmpfs page to the memory cgroup of the process that first writes it,
// so what the command keeps there counts against the group's memory.max like its heap; and the
// tmpfs belongs to the generation's mount namespace alone, so it is freed when the last of
// the generation's processes ends (the group's teardown kills them all) — nothing it leaves
// there outlives the generation, as the host's /dev/shm would let it.
type Shm struct {
	// Size caps the tmpfs in bytes: the group's memory.max, as nothing more could be written
	// there anyway. 0 is tmpfs's own default, half of RAM, as the host's /dev/shm has.
	Size uint64
}

// PrivateShm moves the calling thread into a mount namespace of its own, which still receives
// the host's later mounts (MS_SLAVE), and mounts shm's tmpfs on /dev/shm there (mode 1777, as
// the host's: any --user may create files; nosuid, nodev). It needs CAP_SYS_ADMIN. It locks
// the calling goroutine to its thread for good: the thread, in that namespace, must fork the
// command and end with its goroutine (see forkExec).
func PrivateShm(shm Shm) error {
	runtime.LockOSThread() // never unlocked: the command replaces this program on this thread
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("private %s: unshare the mount namespace: %w", ShmDir, err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("private %s: make / a slave mount: %w", ShmDir, err)
	}
	opts := "mode=1777"
	if shm.Size > 0 {
		opts += ",size=" + strconv.FormatUint(shm.Size, 10)
	}
	if err := unix.Mount("tmpfs", ShmDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("private %s: mount tmpfs (%s): %w", ShmDir, opts, err)
	}
	return nil
}

// ShmFor is the /dev/shm each generation gets: a private tmpfs of size bytes (0: tmpfs's
// default, half of RAM) when cgrun is root, as mounting it needs; nil, the host's, when shared
// (--shared-shm), where the host has no /dev/shm, or when cgrun is not root — then it says on
// log that what the command leaves there outlives it.
func ShmFor(shared bool, size uint64, log io.Writer) *Shm {
	return shmFor(shared, size, os.Geteuid(), ShmDir, log)
}

func shmFor(shared bool, size uint64, euid int, dir string, log io.Writer) *Shm {
	if shared {
		return nil
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	if euid != 0 {
		fmt.Fprintf(log, "cgrun: notice: the command shares the host's %s: only root can give it a private one; what it leaves there outlives the run and its memory limit (--shared-shm: meant so)\n", ShmDir)
		return nil
	}
	return &Shm{Size: size}
}
