package daemonconfig

import (
	"encoding/json"
	"fmt"
)

// A small scanner for JSON that encoding/json has already accepted. It only
// records where things are, so that Merge can edit the text in place and
// leave everything else exactly as the author wrote it.

// item is one member of an object (with a key) or element of an array.
type item struct {
	key              string // decoded, for object members
	keyStart, keyEnd int    // the key with its quotes
	valStart, valEnd int
	commaEnd         int // just after the comma that follows the value; valEnd when there is none
}

// container is an object or array: the offsets of its brackets and its items.
type container struct {
	open, close int
	items       []item
}

// scanTop scans the top-level value of b, which must be an object.
func scanTop(b []byte) (container, error) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		end := skipValue(b, i)
		return container{}, fmt.Errorf("top level is %s, not an object", kindOf(string(b[i:end])))
	}
	return scanContainer(b, i), nil
}

// scanContainer scans the object or array that opens at b[open].
func scanContainer(b []byte, open int) container {
	c := container{open: open}
	isObject := b[open] == '{'
	i := skipWS(b, open+1)
	for i < len(b) && b[i] != '}' && b[i] != ']' {
		var it item
		if isObject {
			it.keyStart = i
			it.keyEnd = skipString(b, i)
			// Keys are decoded as encoding/json decodes them for dockerd,
			// so "ho\u0073ts" is "hosts".
			_ = json.Unmarshal(b[it.keyStart:it.keyEnd], &it.key)
			i = skipWS(b, it.keyEnd)
			i = skipWS(b, i+1) // the colon
		}
		it.valStart = i
		it.valEnd = skipValue(b, i)
		it.commaEnd = it.valEnd
		i = skipWS(b, it.valEnd)
		if i < len(b) && b[i] == ',' {
			it.commaEnd = i + 1
			i = skipWS(b, i+1)
		}
		c.items = append(c.items, it)
	}
	c.close = i
	return c
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the offset just after the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the offset just after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}
