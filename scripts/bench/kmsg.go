package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// kmsg reads the kernel log (/dev/kmsg) from the moment it was opened on. Each record carries
// the printk clock (local_clock, microseconds since boot), which is not CLOCK_MONOTONIC: marker
// lines written to /dev/kmsg between two clock readings tie the two together (calibration).
type kmsg struct {
	fd  int
	buf []byte
	seq int
}

type kmsgRecord struct {
	usec int64 // printk timestamp, µs
	text string
}

func openKmsg() (*kmsg, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seek /dev/kmsg: %w", err)
	}
	return &kmsg{fd: fd, buf: make([]byte, 8192)}, nil
}

func (k *kmsg) Close() { unix.Close(k.fd) }

// drain returns the records logged since the last call.
func (k *kmsg) drain() []kmsgRecord {
	var recs []kmsgRecord
	for {
		n, err := unix.Read(k.fd, k.buf)
		if err == unix.EINTR || err == unix.EPIPE { // EPIPE: records were overwritten; go on
			continue
		}
		if err != nil || n <= 0 {
			return recs // EAGAIN: nothing more
		}
		// "PRIO,SEQ,USEC,FLAGS;TEXT\n" then continuation lines
		head, text, ok := strings.Cut(string(k.buf[:n]), ";")
		f := strings.Split(head, ",")
		if !ok || len(f) < 3 {
			continue
		}
		usec, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		text, _, _ = strings.Cut(text, "\n")
		recs = append(recs, kmsgRecord{usec: usec, text: text})
	}
}

// mark writes a marker line and returns the CLOCK_MONOTONIC bracket around the write and the
// printk timestamp the kernel gave it. Each marker uses a fresh fd: the kernel rate-limits
// writes per open file.
func (k *kmsg) mark() (t1, t2, usec int64, err error) {
	k.seq++
	text := fmt.Sprintf("cgrun-bench: clock marker %d.%d", os.Getpid(), k.seq)
	w, err := unix.Open("/dev/kmsg", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("open /dev/kmsg for writing: %w", err)
	}
	t1 = mono()
	_, err = unix.Write(w, []byte("<6>"+text+"\n")) // without \n the record stays open, unread
	t2 = mono()
	unix.Close(w)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("write /dev/kmsg: %w", err)
	}
	for _, r := range k.drain() {
		if r.text == text {
			return t1, t2, r.usec, nil
		}
	}
	return 0, 0, 0, fmt.Errorf("marker %q not read back from /dev/kmsg", text)
}

// resolution finds the printk clock's granularity: the gcd of the timestamps of markers written
// at random moments over ~50 ms. Some kernels (user-mode-linux) stamp records in jiffies.
func (k *kmsg) resolution() (time.Duration, error) {
	var g int64
	seen := map[int64]bool{}
	for range 20 {
		time.Sleep(rand.N(5 * time.Millisecond))
		_, _, usec, err := k.mark()
		if err != nil {
			return 0, err
		}
		seen[usec] = true
		g = gcd(g, usec)
	}
	if len(seen) < 2 {
		return 0, fmt.Errorf("the printk clock did not move in 50 ms")
	}
	return time.Duration(max(g, 1)) * time.Microsecond, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// offsetRange is what markers say about off = CLOCK_MONOTONIC - printk clock: it lies in
// [lo, hi] (ns). A marker stamped ts (printk clock reads in [ts, ts+res)) and written between
// CLOCK_MONOTONIC t1 and t2 gives off in (t1-ts-res, t2-ts].
type offsetRange struct{ lo, hi int64 }

// calibrate writes n markers, spread at random over one resolution step so that they sample
// its edges, and narrows r with them.
func (k *kmsg) calibrate(r *offsetRange, n int, res time.Duration) error {
	for i := range n {
		if i > 0 && res > time.Microsecond {
			time.Sleep(rand.N(res))
		}
		t1, t2, usec, err := k.mark()
		if err != nil {
			return err
		}
		ts := usec * 1000
		r.lo = max(r.lo, t1-ts-int64(res))
		r.hi = min(r.hi, t2-ts)
	}
	return nil
}

func newOffsetRange() offsetRange { return offsetRange{lo: -1 << 62, hi: 1 << 62} }
