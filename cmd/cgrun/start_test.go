package main

import (
	"debug/buildinfo"
	"testing"
)

// TestBinaryLeavesOutStartCost: modules whose package initialisation every start of cgrun would
// pay for, metrics or not, are not linked into it (issue 28; README's Speed section has the
// figures). The binary's build info lists every module that gave it a package.
func TestBinaryLeavesOutStartCost(t *testing.T) {
	bi, err := buildinfo.ReadFile(cgrunBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(bi.Deps) == 0 {
		t.Fatal("the binary's build info lists no modules")
	}
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/prometheus/client_golang", "google.golang.org/protobuf", "github.com/containerd/cgroups/v3", "github.com/cilium/ebpf":
			t.Errorf("cgrun links %s %s: its package initialisation runs on every start", d.Path, d.Version)
		}
	}
}
