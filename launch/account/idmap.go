package account

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The files that say which ids cgrun's user namespace can use.
const (
	UIDMapFile = "/proc/self/uid_map"
	GIDMapFile = "/proc/self/gid_map"
)

// IDRange is one line of a uid_map or gid_map: Count ids from Inside on, as seen in the namespace.
type IDRange struct{ Inside, Outside, Count uint64 }

// IDMap is a parsed uid_map or gid_map (user_namespaces(7)).
type IDMap []IDRange

// ParseIDMap reads the text of a uid_map or gid_map: lines of three numbers.
func ParseIDMap(text string) (IDMap, error) {
	var m IDMap
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %q: want three numbers (inside, outside, count)", strings.TrimSpace(line))
		}
		var n [3]uint64
		for i, s := range f {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("line %q: %q is not an id or count", strings.TrimSpace(line), s)
			}
			n[i] = v
		}
		m = append(m, IDRange{Inside: n[0], Outside: n[1], Count: n[2]})
	}
	return m, nil
}

// Has reports whether id is mapped: only mapped ids can be set by setuid(2) and setgroups(2).
func (m IDMap) Has(id uint32) bool {
	for _, r := range m {
		if uint64(id) >= r.Inside && uint64(id)-r.Inside < r.Count {
			return true
		}
	}
	return false
}

// String is the map as one line: "0 100000 65536; 65536 0 1".
func (m IDMap) String() string {
	parts := make([]string, len(m))
	for i, r := range m {
		parts[i] = fmt.Sprintf("%d %d %d", r.Inside, r.Outside, r.Count)
	}
	return strings.Join(parts, "; ")
}

// CheckMapped is nil when u's uid is in the uid map at uidMap and its primary and supplementary
// groups are in the gid map at gidMap; otherwise it says which id is outside which map. In a
// rootless container only the mapped ids exist: switching to another fails in the kernel.
func (u *User) CheckMapped(uidMap, gidMap string) error {
	um, err := readIDMap(uidMap)
	if err != nil {
		return err
	}
	if !um.Has(u.UID) {
		return fmt.Errorf("uid %d is not mapped in cgrun's user namespace (%s: %s); pick a user whose uid the container maps, or map it (newuidmap, the runtime's uidMappings)", u.UID, uidMap, um)
	}
	gm, err := readIDMap(gidMap)
	if err != nil {
		return err
	}
	for _, g := range append([]uint32{u.GID}, u.Groups...) {
		if !gm.Has(g) {
			return fmt.Errorf("gid %d is not mapped in cgrun's user namespace (%s: %s); pick a group the container maps, or map it (newgidmap, the runtime's gidMappings)", g, gidMap, gm)
		}
	}
	return nil
}

func readIDMap(path string) (IDMap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseIDMap(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
