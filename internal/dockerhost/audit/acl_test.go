package audit

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// aclBytes encodes entries as Linux stores system.posix_acl_access.
func aclBytes(es ...aclEntry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

func TestParseACL(t *testing.T) {
	// setfacl -m u:1234:rw,g:4321:r on a 0660 file: the mask is rw-.
	base := []aclEntry{{aclUserObj, 6, 0xffffffff}, {aclGroupObj, 6, 0xffffffff}, {aclOther, 0, 0xffffffff}}
	for _, tc := range []struct {
		name string
		es   []aclEntry
		want []aclGrant
	}{
		{"user rw", append(base, aclEntry{aclUser, 6, 1234}, aclEntry{aclMask, 6, 0xffffffff}), []aclGrant{{false, 1234}}},
		{"group rw, user r", append(base, aclEntry{aclUser, 4, 1234}, aclEntry{aclGroup, 6, 4321}, aclEntry{aclMask, 6, 0xffffffff}), []aclGrant{{true, 4321}}},
		// The mask limits named entries: rw- under a r-- mask cannot write.
		{"masked", append(base, aclEntry{aclUser, 6, 1234}, aclEntry{aclMask, 4, 0xffffffff}), nil},
		{"minimal", base, nil},
	} {
		es, err := parseACL(aclBytes(tc.es...))
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.es, es, tc.name)
		assert.Equal(t, tc.want, aclWriters(es), tc.name)
	}
	_, err := parseACL([]byte{1, 0, 0, 0})
	assert.EqualError(t, err, "ACL version 1, want 2")
	_, err = parseACL(aclBytes(aclEntry{aclUser, 6, 1})[:9])
	assert.EqualError(t, err, "ACL of 9 bytes: want a 4-byte header and 8-byte entries")
}
