package listen

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Paths are the files of the unix sockets, which Guard keeps in place.
func (s *Set) Paths() []string {
	if s == nil {
		return nil
	}
	var paths []string
	for _, k := range s.socks {
		if k.path != "" {
			paths = append(paths, k.path)
		}
	}
	return paths
}

// Guard keeps the command that the calling thread is about to exec from removing the sockets'
// files: php-fpm unlinks its unix sockets when its master exits (fpm_sockets.c, cleanup at
// FPM_CLEANUP_PARENT_EXIT_MAIN), inherited ones included, and the next generation would then
// hold a socket nobody can find by its path. Guard moves the thread into a mount namespace of
// its own, which still receives the host's later mounts (MS_SLAVE), and bind-mounts each file
// onto itself there: unlink(2) of a mount point fails with EBUSY, and the host's file stays.
// It needs CAP_SYS_ADMIN; it locks the calling goroutine to its thread for good, as exec must
// follow on this thread.
func Guard(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	runtime.LockOSThread() // never unlocked: the command replaces this program on this thread
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("keep the sockets' files in place: unshare the mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("keep the sockets' files in place: make / a slave mount: %w", err)
	}
	for _, p := range paths {
		if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("keep the socket's file in place: bind-mount %s onto itself: %w", p, err)
		}
	}
	return nil
}
