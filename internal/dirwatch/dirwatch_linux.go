package dirwatch

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// watch is one inotify instance with a watch of every directory the
// path goes through, each for the entry it goes on with (a directory, or
// a symbolic link followed to its target, watched the same way), and of
// the directory itself for the names asked about: whatever makes the
// path reach another directory (a rename or removal of one of its
// directories, a symbolic link switched) is heard like a change of the
// files, so that the path is resolved on the host, as a stat would,
// rather than the directory first watched trusted.
type watch struct {
	mu      sync.Mutex
	dir     string
	content bool
	names   []string

	fd int // -1: no watch, every answer is yes
	// wds names, for each watch descriptor, the entries that matter in
	// its directory; final is the directory's own.
	wds   map[int32][]string
	final int32
	tried time.Time // the last attempt to set the watch up
	buf   []byte
}

const (
	entries = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
		syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR
	contents = entries | syscall.IN_MODIFY | syscall.IN_ATTRIB | syscall.IN_CLOSE_WRITE

	// maxLinks bounds the symbolic links followed, as the kernel's
	// MAXSYMLINKS (40).
	maxLinks = 40
	// retryEvery spaces the attempts to set up a watch that could not be
	// (a directory missing): each is a walk of the path.
	retryEvery = time.Second
)

func newWatch(dir string, content bool, names []string) *watch {
	w := &watch{dir: dir, content: content, names: names, fd: -1, buf: make([]byte, 16<<10)}
	w.setup()
	return w
}

// setup (re)makes the instance and its watches; w.fd is -1 when it
// could not.
func (w *watch) setup() {
	w.drop()
	w.tried = time.Now()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return
	}
	w.fd, w.wds = fd, map[int32][]string{}
	abs, err := filepath.Abs(w.dir)
	if err == nil {
		var dir string
		if dir, err = w.walk("/", abs, 0); err == nil {
			mask := uint32(entries)
			if w.content {
				mask = contents
			}
			w.final, err = w.add(dir, mask, w.names...)
		}
	}
	if err != nil {
		w.drop()
	}
}

// walk resolves path from the directory resolved (which has no symbolic
// link in it), watching each directory it goes through for the entry it
// goes on with, and returns the directory reached.
func (w *watch) walk(resolved, path string, links int) (string, error) {
	if strings.HasPrefix(path, "/") {
		resolved = "/"
	}
	for _, c := range strings.Split(path, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			// resolved has no link in it: its parent is the entry's.
			resolved = filepath.Dir(resolved)
			continue
		}
		if _, err := w.add(resolved, entries, c); err != nil {
			return "", err
		}
		next := filepath.Join(resolved, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return "", errors.New("too many levels of symbolic links")
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if next, err = w.walk(resolved, target, links); err != nil {
				return "", err
			}
		}
		resolved = next
	}
	return resolved, nil
}

// add watches dir (adding to a watch it already has) for names.
func (w *watch) add(dir string, mask uint32, names ...string) (int32, error) {
	wd, err := syscall.InotifyAddWatch(w.fd, dir, mask|syscall.IN_MASK_ADD)
	if err != nil {
		return 0, err
	}
	w.wds[int32(wd)] = append(w.wds[int32(wd)], names...)
	return int32(wd), nil
}

func (w *watch) drop() {
	if w.fd >= 0 {
		syscall.Close(w.fd)
	}
	w.fd, w.wds = -1, nil
}

func (w *watch) changed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		if time.Since(w.tried) >= retryEvery || time.Since(w.tried) < 0 {
			w.setup()
		}
		return true
	}
	changed := false
	for {
		n, err := syscall.Read(w.fd, w.buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return changed
		}
		if err != nil || n <= 0 {
			// The instance is broken: stat until a new one is made.
			w.drop()
			return true
		}
		matters, moved := w.matters(w.buf[:n])
		if moved {
			// The path may reach another directory now: watch the one
			// it reaches. The caller stats after this, so what changed
			// in between is not missed.
			w.setup()
			return true
		}
		changed = changed || matters
	}
}

// matters reports whether the events in b concern a watched entry or
// were lost (IN_Q_OVERFLOW); moved, whether the path may now reach
// another directory: one of the directories it goes through, or a link
// on its way, was renamed, removed or replaced, or a watch ended.
func (w *watch) matters(b []byte) (matters, moved bool) {
	for len(b) >= syscall.SizeofInotifyEvent {
		ev := (*syscall.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := syscall.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) || ev.Mask&(syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF|syscall.IN_IGNORED|syscall.IN_UNMOUNT) != 0 {
			return true, true
		}
		name := b[syscall.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		names, known := w.wds[ev.Wd]
		switch {
		case len(name) == 0 || !known:
			matters = true
		case ev.Wd != w.final && contains(names, string(name)):
			// A directory or link on the path.
			return true, true
		case ev.Wd == w.final && contains(names, string(name)):
			matters = true
		}
		b = b[end:]
	}
	return matters, false
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func (w *watch) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.drop()
	w.tried = time.Now().Add(1000 * time.Hour) // never again
	return nil
}
