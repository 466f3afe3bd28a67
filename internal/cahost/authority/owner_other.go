//go:build !unix

package authority

import "io/fs"

func fileOwner(fs.FileInfo) (int, bool) { return 0, false }

func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }
