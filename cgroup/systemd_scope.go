package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// StartScope asks systemd for a transient scope unit holding process pid, delegated with the
// controllers cgrun uses — what `systemd-run --scope -p Delegate="memory pids"` does — and
// returns once systemd has moved pid into it. It talks to the system manager as root and to the
// user's own manager otherwise. After it, pid's group is the scope's, which is delegated: cgrun
// may create groups below it.
//
// Only the controllers asked for (DelegateControllers), not Delegate=yes: a scope delegated every
// controller makes systemd switch cpu and io on in its slice and the root, and then apply again
// the settings of every other unit in that slice, at each start (in the systemd guest 3 times
// the manager's system calls of systemd-run's scope). A manager older than DelegateControllers
// (systemd 236) is asked for Delegate=yes.
//
// As systemd-run does, it talks to the manager straight over its private socket where it can
// (/run/systemd/private for root, $XDG_RUNTIME_DIR/systemd/private for a user): one
// connection, one StartTransientUnit call and one JobRemoved signal. Over the bus (through
// dbus-daemon, go-systemd's connection) the same takes two connections, each with its Hello,
// and an AddMatch round trip first; that is the way where the private socket is not there or
// refuses cgrun.
func StartScope(ctx context.Context, unit, description string, pid int, controllers []string) error {
	bus, private := "system", "/run/systemd/private"
	if os.Geteuid() != 0 {
		bus, private = "user", ""
		if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
			private = dir + "/systemd/private"
		}
	}
	props := scopeProperties(description, pid, godbus.MakeVariant(controllers))
	err := startScope(ctx, bus, private, unit, props)
	if err != nil && strings.Contains(err.Error(), "DelegateControllers") {
		err = startScope(ctx, bus, private, unit, scopeProperties(description, pid, godbus.MakeVariant(true)))
	}
	return err
}

// scopeProperties are the scope's properties; delegate is DelegateControllers' list of
// controllers, or Delegate's true.
func scopeProperties(description string, pid int, delegate godbus.Variant) []sddbus.Property {
	name := "DelegateControllers"
	if delegate.Signature().String() == "b" {
		name = "Delegate"
	}
	return []sddbus.Property{
		sddbus.PropDescription(description),
		sddbus.PropPids(uint32(pid)),
		{Name: name, Value: delegate},
		// Remove the scope also when it failed, so that no unit is left behind.
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
	}
}

// startScope asks over the private socket where it can, else over the bus.
func startScope(ctx context.Context, bus, private, unit string, props []sddbus.Property) error {
	if private != "" {
		err := startScopePrivate(ctx, private, unit, props)
		if !errors.Is(err, errNoPrivateSocket) {
			if err != nil {
				return fmt.Errorf("systemd %s manager (%s): %w", bus, private, err)
			}
			return nil
		}
	}
	return startScopeBus(ctx, bus, unit, props)
}

// errNoPrivateSocket: the manager's private socket cannot be used (absent, refused, or it
// would not take cgrun's credentials); the bus is the way then.
var errNoPrivateSocket = errors.New("no private socket")

// startScopePrivate asks for the scope over the manager's private socket: a direct connection,
// on which the manager sends every job's signals without a subscription and takes no Hello.
func startScopePrivate(ctx context.Context, socket, unit string, props []sddbus.Property) error {
	conn, err := godbus.Dial("unix:path="+socket, godbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: %v", errNoPrivateSocket, err)
	}
	defer conn.Close()
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Geteuid()))}); err != nil {
		return fmt.Errorf("%w: %v", errNoPrivateSocket, err)
	}
	signals := make(chan *godbus.Signal, 16)
	conn.Signal(signals) // before the call: the job's signal may come right behind its reply
	var job godbus.ObjectPath
	err = conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").CallWithContext(ctx,
		"org.freedesktop.systemd1.Manager.StartTransientUnit", 0, unit, "fail", props, []sddbus.PropertyCollection{}).Store(&job)
	if err != nil {
		return fmt.Errorf("ask for scope %s: %w", unit, err)
	}
	for {
		select {
		case s, ok := <-signals:
			if !ok {
				return fmt.Errorf("scope %s: the connection closed before its job ended", unit)
			}
			// JobRemoved(u id, o job, s unit, s result)
			if s.Name != "org.freedesktop.systemd1.Manager.JobRemoved" || len(s.Body) != 4 {
				continue
			}
			if path, _ := s.Body[1].(godbus.ObjectPath); path != job {
				continue
			}
			if result, _ := s.Body[3].(string); result != "done" {
				return fmt.Errorf("starting scope %s ended with %q", unit, result)
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("scope %s: %w", unit, ctx.Err())
		}
	}
}

// startScopeBus asks for the scope over the system or user bus, through go-systemd.
func startScopeBus(ctx context.Context, bus, unit string, props []sddbus.Property) error {
	var conn *sddbus.Conn
	var err error
	if bus == "system" {
		conn, err = sddbus.NewSystemConnectionContext(ctx)
	} else {
		conn, err = sddbus.NewUserConnectionContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("connect to the systemd %s manager over D-Bus to ask for a delegated scope: %w", bus, err)
	}
	defer conn.Close()
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
