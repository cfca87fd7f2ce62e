package kubeletstub

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
)

// files are the pods' files, in memory, for kubectl cp: it runs `tar -xmf - -C dir` to copy
// into a pod and `tar cf - path` to copy out of one. Every pod of the stand-in shares them.
type files struct {
	mu    sync.Mutex
	files map[string][]byte
}

func newFiles() *files { return &files{files: map[string][]byte{}} }

// isDir reports whether name is a directory: the root, /tmp, or a parent of a file.
func (f *files) isDir(name string) bool {
	name = path.Clean("/" + name)
	if name == "/" || name == "/tmp" {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.files {
		if strings.HasPrefix(k, name+"/") {
			return true
		}
	}
	return false
}

// test answers `test -d X`, `test -e X` and `test -f X`.
func (f *files) test(args []string) int {
	if len(args) != 2 {
		return 2
	}
	name := path.Clean("/" + args[1])
	f.mu.Lock()
	_, file := f.files[name]
	f.mu.Unlock()
	dir := f.isDir(name)
	ok := map[string]bool{"-d": dir, "-f": file, "-e": dir || file}[args[0]]
	if ok {
		return 0
	}
	return 1
}

// tar extracts (-x, from stdin, into -C dir) or creates (c, to stdout, of the named paths).
func (p *proc) tar(args []string) int {
	flags, dir, names := "", "/", []string(nil)
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-C" && i+1 < len(args):
			dir = args[i+1]
			i++
		case a == "-" || strings.HasPrefix(a, "--"):
		case strings.HasPrefix(a, "-") || (flags == "" && strings.ContainsAny(a, "cx")):
			flags += a
		default:
			names = append(names, a)
		}
	}
	var err error
	switch {
	case strings.Contains(flags, "x"):
		err = p.fs.extract(p.in, dir)
	case strings.Contains(flags, "c"):
		err = p.fs.create(p.out, names)
	default:
		err = fmt.Errorf("want -x or c in %q", flags)
	}
	if err != nil {
		fmt.Fprintln(p.errOut, "tar:", err)
		return 2
	}
	return 0
}

func (f *files) extract(in io.Reader, dir string) error {
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		var b bytes.Buffer
		if _, err := io.Copy(&b, tr); err != nil {
			return err
		}
		f.mu.Lock()
		f.files[path.Join("/", dir, h.Name)] = b.Bytes()
		f.mu.Unlock()
	}
}

// create writes a tar of the files at or under names, named without the leading slash as GNU
// tar does (kubectl cp strips the same prefix).
func (f *files) create(out io.Writer, names []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var match []string
	for k := range f.files {
		for _, n := range names {
			n = path.Clean("/" + n)
			if k == n || strings.HasPrefix(k, n+"/") {
				match = append(match, k)
			}
		}
	}
	if len(match) == 0 {
		return fmt.Errorf("%s: Cannot stat: No such file or directory", strings.Join(names, " "))
	}
	sort.Strings(match)
	tw := tar.NewWriter(out)
	for _, k := range match {
		data := f.files[k]
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(k, "/"), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
