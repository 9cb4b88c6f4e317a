package main

import (
	"strconv"

	"github.com/spf13/pflag"
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
