package cgroup

// SetPidsMax writes pids.max; v must be Set.
func SetPidsMax(dir string, v Limit) error { return writeFile(dir, "pids.max", v.String()) }
