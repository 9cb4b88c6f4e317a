// Command gonop is the smallest static Go program: an empty main. The start comparison of
// cgrun-bench runs it to show what the exec and runtime start of any Go binary cost.
package main

func main() {}
