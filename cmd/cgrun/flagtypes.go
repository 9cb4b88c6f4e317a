package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/listen"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/oomwatch"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// The flags' values keep the text as given (the run flags are parsed after the environment has
// filled them in); these types only name in --help what each flag takes — SIZE, N, DUR, FILE —
// where pflag would print Go's type names.

// textValue is a string flag whose --help shows kind instead of "string".
type textValue struct {
	p    *string
	kind string
}

func textVar(fs *pflag.FlagSet, p *string, name, kind, value, usage string) {
	*p = value
	fs.Var(&textValue{p, kind}, name, usage)
}

func (v *textValue) Set(s string) error { *v.p = s; return nil }
func (v *textValue) String() string     { return *v.p }
func (v *textValue) Type() string       { return v.kind }

// countValue is an int flag whose --help shows N instead of "int".
type countValue int

func countVar(fs *pflag.FlagSet, p *int, name, usage string) {
	fs.Var((*countValue)(p), name, usage)
}

func (c *countValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	*c = countValue(n)
	return nil
}

func (c *countValue) String() string { return strconv.Itoa(int(*c)) }
func (c *countValue) Type() string   { return "N" }

// The typed flags below parse straight into what cgrun uses: a bad value fails where it is
// given — on the command line or in its CGRUN_ variable — with the line cgrun has always said:
// "--memory-max: CAUSE" (or CGRUN_MEMORY_MAX: CAUSE), see valueError.

// valueError is a typed flag's bad value. It is told as ORIGIN: CAUSE; with quote as
// ORIGIN "VALUE": CAUSE; whole causes name the flag themselves and are told as they are.
type valueError struct {
	err          error
	quote, whole bool
}

func (e *valueError) Error() string { return e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

// tell is the line for the bad value given as origin (--flag, or its variable).
func (e *valueError) tell(origin, value string) error {
	switch {
	case e.whole:
		return e.err
	case e.quote:
		return fmt.Errorf("%s %q: %w", origin, value, e.err)
	}
	return fmt.Errorf("%s: %w", origin, e.err)
}

func bad(err error) error { return &valueError{err: err} }

// parsedValue is a flag that parses its text into *into as it is set, and keeps the text as
// given for --help's defaults; parse's errors are valueErrors.
type parsedValue[T any] struct {
	into  *T
	parse func(string) (T, error)
	kind  string
	text  string
}

func parsedVar[T any](fs *pflag.FlagSet, into *T, kind, text string, parse func(string) (T, error), name, usage string) {
	fs.Var(&parsedValue[T]{into: into, parse: parse, kind: kind, text: text}, name, usage)
}

func (v *parsedValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.into, v.text = x, s
	return nil
}

func (v *parsedValue[T]) String() string { return v.text }
func (v *parsedValue[T]) Type() string   { return v.kind }

// told makes parse's errors the plain "ORIGIN: CAUSE" kind of valueError.
func told[T any](parse func(string) (T, error)) func(string) (T, error) {
	return func(s string) (T, error) {
		x, err := parse(s)
		if err != nil {
			return x, bad(err)
		}
		return x, nil
	}
}

// size is a SIZE: bytes, a unit, a percentage of avail(), or max.
func size(avail func() uint64) func(string) (cgroup.Limit, error) {
	return told(func(s string) (cgroup.Limit, error) { return cgroup.ParseSize(s, whole(s, avail)) })
}

// amount is a SIZE that must be an amount, not max: a headroom, a mark.
func amount(avail func() uint64) func(string) (uint64, error) {
	return func(s string) (uint64, error) {
		l, err := cgroup.ParseSize(s, whole(s, avail))
		if err != nil || l.Max {
			return 0, &valueError{err: errors.New("want a size such as 64M"), quote: true}
		}
		return l.Value, nil
	}
}

// whole is what a percentage in s is of: avail(), asked only when s is one.
func whole(s string, avail func() uint64) uint64 {
	if strings.HasSuffix(strings.TrimSpace(s), "%") {
		return avail()
	}
	return 0
}

// cpuQuota is cpu.max as systemd's CPUQuota= takes it: 150%.
func cpuQuota(s string) (*cgroup.CPUMax, error) {
	m, err := cgroup.ParseCPUQuota(s)
	if err != nil {
		return nil, bad(err)
	}
	return &m, nil
}

// percent is a percentage, "5%" or "5", from 0 to 1000.
func percent(s string) (float64, error) {
	p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || p < 0 || p > 1000 {
		return 0, &valueError{err: errors.New("want a percentage such as 5%"), quote: true}
	}
	return p, nil
}

// signalValue is a signal name or number.
type signalValue struct{ into *unix.Signal }

func (v signalValue) Set(s string) error {
	sig, err := exitcode.ParseSignal(s)
	if err != nil {
		return bad(err)
	}
	*v.into = sig
	return nil
}

func (v signalValue) String() string { return exitcode.SignalName(*v.into) }
func (v signalValue) Type() string   { return "SIGNAL" }

// restartValue is a --restart policy.
type restartValue struct{ into *policy.Restart }

func (v restartValue) Set(s string) error {
	r, err := policy.ParseRestart(s)
	if err != nil {
		return &valueError{err: err, whole: true} // it names --restart itself
	}
	*v.into = r
	return nil
}

func (v restartValue) String() string { return string(*v.into) }
func (v restartValue) Type() string   { return "WHEN" }

// triggersValue is a repeatable PSI trigger: each use adds one.
type triggersValue struct{ into *[]oomwatch.Trigger }

func (v triggersValue) Set(s string) error {
	t, err := oomwatch.ParseTrigger(s)
	if err != nil {
		return bad(err)
	}
	*v.into = append(*v.into, t)
	return nil
}

func (v triggersValue) String() string {
	var s []string
	for _, t := range *v.into {
		s = append(s, t.String())
	}
	return strings.Join(s, ", ")
}

func (v triggersValue) Type() string { return "TRIGGER" }

// highRateValue is --recycle-on-high: N memory.high events, or N/DURATION for the window.
type highRateValue struct {
	n      *int
	window *time.Duration
	text   string
}

func (v *highRateValue) Set(s string) error {
	ns, win, hasWin := strings.Cut(s, "/")
	n, err := strconv.Atoi(ns)
	if err != nil || n < 1 {
		return &valueError{err: errors.New("want N or N/DURATION, e.g. 200 or 200/10s"), quote: true}
	}
	if hasWin {
		d, err := parseDuration(win)
		if err != nil || d <= 0 {
			return &valueError{err: errors.New("bad window: want e.g. 200/10s"), quote: true}
		}
		*v.window = d
	}
	*v.n, v.text = n, s
	return nil
}

func (v *highRateValue) String() string { return v.text }
func (v *highRateValue) Type() string   { return "N[/DUR]" }

// optSignalValue is a signal that may be left unset (0).
type optSignalValue struct{ into *unix.Signal }

func (v optSignalValue) Set(s string) error { return signalValue(v).Set(s) }
func (v optSignalValue) Type() string       { return "SIGNAL" }
func (v optSignalValue) String() string {
	if *v.into == 0 {
		return ""
	}
	return exitcode.SignalName(*v.into)
}

// listenValue is a repeatable --listen address: each use adds one.
type listenValue struct{ into *[]listen.Addr }

func (v listenValue) Set(s string) error {
	a, err := listen.Parse(s)
	if err != nil {
		return &valueError{err: err, whole: true} // it names --listen and the value itself
	}
	*v.into = append(*v.into, a)
	return nil
}

func (v listenValue) String() string {
	var s []string
	for _, a := range *v.into {
		s = append(s, a.Spec)
	}
	return strings.Join(s, ", ")
}

func (v listenValue) Type() string { return "ADDR" }

// thrashValue is --thrash: off, on, or settings (policy.ParseThrash).
type thrashValue struct{ into *policy.Thrash }

func (v thrashValue) Set(s string) error {
	t, err := policy.ParseThrash(s)
	if err != nil {
		return &valueError{err: err, whole: true} // it names --thrash itself
	}
	*v.into = t
	return nil
}

func (v thrashValue) String() string {
	if !v.into.Set {
		return "on"
	}
	return v.into.String()
}

func (v thrashValue) Type() string { return "off|on|SETTINGS" }
