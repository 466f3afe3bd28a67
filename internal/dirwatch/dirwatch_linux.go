package dirwatch

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

type watch struct {
	mu sync.Mutex
	fd int // inotify instance; -1: no watch, every answer is yes
	// ep holds fd and mounts: one epoll_wait(2) says whether either has
	// news, as cheap as the read(2) of fd it replaces.
	ep int
	// mounts is /proc/self/mountinfo, which signals a priority event when
	// the mount table changes (proc(5)): a mount over the directory or a
	// file in it (a bind mount) makes no inotify event.
	mounts int
	// paths are the directories watched; mounted is the mount table's
	// lines of the mounts on them, above them or on the directory's
	// entries (a mount elsewhere, a container's on a docker host, is no
	// change of the watch's).
	paths   []string
	mounted string
	dir     string
	// dev and ino are the watched directory's: after a mount change, a
	// directory found at dir that is not this one is not watched.
	dev, ino uint64
	// wds says, per inotify watch, the entry names whose change matters
	// (true) and those whose change ends the watch (false: a symlink on
	// the path to dir, which then points elsewhere). Every watch's own
	// removal or move ends it: the directory, and each directory the path
	// goes through (its parent moved aside and a restored one put in its
	// place leaves the directory itself untouched).
	wds   map[int32]map[string]bool
	dirWD int32
	buf   []byte

	// mask and names are what New was asked to watch, to set the watch
	// up again where the path leads after it changed; tried is the last
	// attempt (a path that cannot be watched is tried again once every
	// retryEvery, each attempt being a walk of the path).
	mask   uint32
	names  []string
	tried  time.Time
	closed bool
}

// retryEvery spaces the attempts to set up a watch that could not be.
const retryEvery = time.Second

const (
	self    = syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR
	entries = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO | self
	// contents is entries and what the entries hold.
	contents = entries | syscall.IN_MODIFY | syscall.IN_ATTRIB | syscall.IN_CLOSE_WRITE
	// maxLinks is the kernel's bound on symlinks in one lookup
	// (path_resolution(7)).
	maxLinks = 40
)

func newWatch(dir string, content bool, names []string) *watch {
	mask := uint32(entries)
	if content {
		mask = contents
	}
	w := &watch{fd: -1, ep: -1, mounts: -1, dir: dir, buf: make([]byte, 16<<10), mask: mask, names: names}
	w.rewatch()
	return w
}

// rewatch (re)sets up the watch of where the path leads now; fd is -1
// when it could not be.
func (w *watch) rewatch() {
	w.closeLocked()
	w.tried, w.paths, w.wds = time.Now(), nil, map[int32]map[string]bool{}
	if err := w.setup(w.dir, w.mask, w.names); err != nil {
		w.closeLocked()
	}
}

func (w *watch) setup(dir string, mask uint32, names []string) error {
	var err error
	if w.fd, err = syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC); err != nil {
		return err
	}
	real, err := w.resolve(dir)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	if w.dirWD, err = w.add(real, mask, want); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(real, &st); err != nil {
		return err
	}
	w.dev, w.ino = st.Dev, st.Ino
	if w.mounts, err = syscall.Open("/proc/self/mountinfo", syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err != nil {
		return err
	}
	if w.mounted, err = w.mountsOn(); err != nil {
		return err
	}
	if w.ep, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		return err
	}
	if err := syscall.EpollCtl(w.ep, syscall.EPOLL_CTL_ADD, w.fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(w.fd)}); err != nil {
		return err
	}
	return syscall.EpollCtl(w.ep, syscall.EPOLL_CTL_ADD, w.mounts, &syscall.EpollEvent{Events: syscall.EPOLLPRI, Fd: int32(w.mounts)})
}

// add watches dir for mask, the names' changes counting as want says
// (merged with what dir is already watched for).
func (w *watch) add(dir string, mask uint32, want map[string]bool) (int32, error) {
	wd, err := syscall.InotifyAddWatch(w.fd, dir, mask|syscall.IN_MASK_ADD|syscall.IN_DONT_FOLLOW)
	if err != nil {
		return 0, err
	}
	w.paths = append(w.paths, dir)
	m := w.wds[int32(wd)]
	if m == nil {
		m = map[string]bool{}
		w.wds[int32(wd)] = m
	}
	for n, v := range want {
		m[n] = m[n] || v
	}
	return int32(wd), nil
}

// resolve walks dir's path one entry at a time as the kernel does, with
// a watch on each directory it goes through (self) and on the entry of
// each symlink it follows, and returns the directory's path without
// symlinks.
func (w *watch) resolve(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	cur, rest, links := "/", strings.TrimPrefix(dir, "/"), 0
	for rest != "" {
		var name string
		name, rest, _ = strings.Cut(rest, "/")
		switch name {
		case "", ".":
			continue
		case "..":
			// cur has no symlink left: its parent is its lexical one.
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if _, err := w.add(next, self, nil); err != nil {
				return "", err
			}
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", syscall.ELOOP
		}
		if _, err := w.add(cur, entries, map[string]bool{name: false}); err != nil {
			return "", err
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		rest = strings.TrimSuffix(target+"/"+rest, "/")
	}
	return cur, nil
}

func (w *watch) changed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		if since := time.Since(w.tried); !w.closed && (since >= retryEvery || since < 0) {
			w.rewatch()
		}
		return true
	}
	var evs [2]syscall.EpollEvent
	n, err := syscall.EpollWait(w.ep, evs[:], 0)
	for err == syscall.EINTR {
		n, err = syscall.EpollWait(w.ep, evs[:], 0)
	}
	if err != nil {
		w.rewatch()
		return true
	}
	changed, queued := false, false
	for _, ev := range evs[:n] {
		if ev.Fd != int32(w.mounts) {
			queued = true
			continue
		}
		// A mount or unmount on the path or an entry: the files at the
		// path may be others now. When the directory at dir is
		// another, its watch would hear nothing: watch the one there.
		mounted, err := w.mountsOn()
		if err != nil {
			w.rewatch()
			return true
		}
		if mounted == w.mounted {
			continue
		}
		w.mounted, changed = mounted, true
		var st syscall.Stat_t
		if err := syscall.Stat(w.dir, &st); err != nil || st.Dev != w.dev || st.Ino != w.ino {
			w.rewatch()
			return true
		}
	}
	// epoll's ready list is updated by the writer's system call, as the
	// inotify queue is: nothing ready is nothing queued, and the read is
	// spared (one system call per question when nothing changed).
	if !queued {
		return changed
	}
	for {
		n, err := syscall.Read(w.fd, w.buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return changed
		}
		if err != nil || n <= 0 {
			// The instance is broken: make another.
			w.rewatch()
			return true
		}
		matters, gone := w.matters(w.buf[:n])
		if gone {
			// A directory on the path was removed or moved, or a symlink
			// on it replaced: the path may lead elsewhere now. Watch
			// where it leads; the caller stats after this answer, so a
			// change in between is not missed.
			w.rewatch()
			return true
		}
		changed = changed || matters
	}
}

// matters reports whether the events in b concern a watched entry or
// were lost (IN_Q_OVERFLOW); gone, whether the path may lead to another
// directory: one of its directories removed or moved (its watch then
// ends: IN_IGNORED), or one of its symlinks changed.
func (w *watch) matters(b []byte) (matters, gone bool) {
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
		if ev.Mask&syscall.IN_Q_OVERFLOW != 0 {
			matters = true
		} else if want, ok := w.wds[ev.Wd][string(name)]; ok {
			if !want {
				return true, true
			}
			matters = true
		} else if len(name) == 0 && ev.Wd == w.dirWD {
			// An event of the watched directory itself (its mode).
			matters = true
		}
		b = b[end:]
	}
	return matters, false
}

// mountsOn reads the mount table (mountinfo, proc(5)) and returns the
// lines of the mounts whose mount point is a watched directory, above one,
// or an entry of the last.
func (w *watch) mountsOn() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	dir := w.paths[len(w.paths)-1]
	var out strings.Builder
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		on := filepath.Dir(mp) == dir
		for _, p := range w.paths {
			on = on || p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")
		}
		if on {
			out.WriteString(line)
		}
	}
	return out.String(), nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (w *watch) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	return w.closeLocked()
}

func (w *watch) closeLocked() error {
	var err error
	if w.fd >= 0 {
		err = syscall.Close(w.fd)
	}
	for _, fd := range []int{w.ep, w.mounts} {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
	w.fd, w.ep, w.mounts = -1, -1, -1
	return err
}
