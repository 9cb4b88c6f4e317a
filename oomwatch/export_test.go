package oomwatch

import "time"

// SetPolling sets how long Run rereads memory.events after a max or oom event (window) and for
// how long in a row at most (most), so that tests can use windows wider than their own delays.
func (w *Watcher) SetPolling(window, most time.Duration) { w.pollWindow, w.pollMost = window, most }
