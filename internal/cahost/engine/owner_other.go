//go:build !unix

package engine

import "io/fs"

func fileOwnerGroup(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
