package cgroup

import (
	"context"
	"fmt"
	"os"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// StartScope asks systemd for a transient scope unit with Delegate=yes holding process pid —
// what `systemd-run --scope -p Delegate=yes` does — and returns once systemd has moved pid into
// it. It talks to the system manager as root and to the user's own manager otherwise. After it,
// pid's group is the scope's, which is delegated: cgrun may create groups below it.
func StartScope(ctx context.Context, unit, description string, pid int) error {
	var conn *sddbus.Conn
	var err error
	bus := "system"
	if os.Geteuid() == 0 {
		conn, err = sddbus.NewSystemConnectionContext(ctx)
	} else {
		bus = "user"
		conn, err = sddbus.NewUserConnectionContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("connect to the systemd %s manager over D-Bus to ask for a delegated scope: %w", bus, err)
	}
	defer conn.Close()
	props := []sddbus.Property{
		sddbus.PropDescription(description),
		sddbus.PropPids(uint32(pid)),
		{Name: "Delegate", Value: godbus.MakeVariant(true)},
		// Remove the scope also when it failed, so that no unit is left behind.
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
	}
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
		return fmt.Errorf("ask the systemd %s manager for scope %s: %w", bus, unit, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("systemd %s manager: starting scope %s ended with %q", bus, unit, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd %s manager: scope %s: %w", bus, unit, ctx.Err())
	}
}
