// Package dirwatch tells, without blocking and in two system calls
// (epoll_wait(2) and read(2)), whether
// some entries of a directory may have changed since it last asked. The
// enforcement points ask on every API call whether the inventory or the
// audit trail's file changed, and a stat(2) of a path costs two to four
// times as much as asking an inotify(7) instance with nothing in it
// (BenchmarkChanged): they stat only when the answer is yes.
//
// The answer is exact in one direction only, the one that matters: a
// change made by a system call that has returned (a commit of 'dtls
// revoke', a rename over the trail) is queued before that call returns
// (fsnotify is called from the VFS on the writer's path), so Changed
// reports it to a question asked after. That holds too for a change of
// where the path leads: every directory on it and every symlink it goes
// through are watched, and the mount table (a bind mount makes no
// inotify event), so that a state directory that is a symlink re-pointed
// by a deployment, under a parent moved aside for a restored one, or with
// another mounted over it, is a yes, and the directory the path leads to
// then is the one watched from there on. A yes may be spurious (an entry
// changed back, an overflow of the queue); without inotify, or while the
// path cannot be watched (tried again once a second), the answer is
// always yes.
package dirwatch

// Watch watches the named entries of one directory.
type Watch struct {
	w *watch
}

// Contents watches the entries names of dir, what they hold (a write, a
// change of mode or times) and which file each is (created, removed,
// renamed), and dir itself (removed or renamed). It never fails: a Watch
// that cannot be set up says yes to every question.
func Contents(dir string, names ...string) *Watch {
	return &Watch{w: newWatch(dir, true, names)}
}

// Entries is Contents without what the entries hold: only which file each
// name is. A writer of the file can ask it without hearing its own
// writes.
func Entries(dir string, names ...string) *Watch {
	return &Watch{w: newWatch(dir, false, names)}
}

// Changed reports whether one of the entries may have changed since the
// previous call (since New, the first time). Safe for concurrent use.
func (w *Watch) Changed() bool {
	if w == nil {
		return true
	}
	return w.w.changed()
}

// Close releases the watch; afterwards Changed always says yes.
func (w *Watch) Close() error {
	if w == nil {
		return nil
	}
	return w.w.close()
}
