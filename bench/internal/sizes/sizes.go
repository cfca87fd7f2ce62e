// Package sizes parses the benches' list flags (-targets, -conns, -steps): comma-separated numbers.
package sizes

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse returns the numbers in list, each at least least, or an error that names the first one
// that is not.
func Parse(list string, least int) ([]int, error) {
	var ns []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < least {
			return nil, fmt.Errorf("%q is not a number of at least %d", s, least)
		}
		ns = append(ns, n)
	}
	return ns, nil
}
