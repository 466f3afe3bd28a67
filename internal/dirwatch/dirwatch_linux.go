package dirwatch

import (
	"bytes"
	"slices"
	"sync"
	"syscall"
	"unsafe"
)

type watch struct {
	mu    sync.Mutex
	fd    int // -1: no watch, every answer is yes
	names []string
	buf   []byte
}

const (
	entries = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
		syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR
	contents = entries | syscall.IN_MODIFY | syscall.IN_ATTRIB | syscall.IN_CLOSE_WRITE
)

func newWatch(dir string, content bool, names []string) *watch {
	mask := uint32(entries)
	if content {
		mask = contents
	}
	w := &watch{fd: -1, names: slices.Clone(names), buf: make([]byte, 16<<10)}
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return w
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		syscall.Close(fd)
		return w
	}
	w.fd = fd
	return w
}

func (w *watch) changed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
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
			// The instance is broken: stat from now on.
			syscall.Close(w.fd)
			w.fd = -1
			return true
		}
		matters, gone := w.matters(w.buf[:n])
		if gone {
			// The directory was removed or renamed: a directory put at
			// its path would not be watched. Stat from now on.
			syscall.Close(w.fd)
			w.fd = -1
			return true
		}
		changed = changed || matters
	}
}

// matters reports whether the events in b concern a watched entry or
// were lost (IN_Q_OVERFLOW); gone, whether the directory itself was
// removed or renamed (its watch then ends: IN_IGNORED).
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
		if len(name) == 0 || slices.Contains(w.names, string(name)) {
			matters = true
		}
		b = b[end:]
	}
	return matters, false
}

func (w *watch) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return nil
	}
	err := syscall.Close(w.fd)
	w.fd = -1
	return err
}
