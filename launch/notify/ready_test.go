package notify

import (
	"net"
	"testing"
	"time"
)

func TestIsReady(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"READY=1", true},
		{"STATUS=starting\nREADY=1\n", true},
		{"READY=0", false},
		{"STATUS=READY=1", false},
		{"", false},
	} {
		if have := IsReady([]byte(tc.msg)); have != tc.want {
			t.Errorf("IsReady(%q) = %v, want %v", tc.msg, have, tc.want)
		}
	}
}

func TestSocketHearsReady(t *testing.T) {
	s, err := Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send := func(msg string) {
		c, err := net.Dial("unixgram", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("STATUS=warming up")
	select {
	case <-s.Ready():
		t.Fatal("ready before READY=1")
	case <-time.After(50 * time.Millisecond):
	}
	send("READY=1")
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("READY=1 was not heard")
	}
	send("READY=1") // again: no panic on a closed channel
}
