package tree

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest name (in bytes) of one path component, the
// common file system limit.
const MaxNameLen = 255

// MaxPathLen bounds a whole path so that a hostile request cannot make a
// lookup walk an unbounded number of components.
const MaxPathLen = 4096

// MaxPathDepth bounds the number of components in a path, and with it
// the number of nodes in a proof.
const MaxPathDepth = 256

// ErrBadName is returned (wrapped in a *NameError) for names and paths
// that grits refuses to store or resolve.
var ErrBadName = errors.New("invalid name")

// NameError says which name was refused and why.
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid name %q: %s", clip(e.Name), e.Reason)
}

func (e *NameError) Is(target error) bool { return target == ErrBadName }

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// ValidName checks one path component. Names are UTF-8 so that every
// client (Go, JavaScript, a browser URL) sees the same string; the
// dot names and '/' are refused so that a name can never climb or split.
func ValidName(name string) error {
	switch {
	case name == "":
		return &NameError{name, "empty"}
	case name == "." || name == "..":
		return &NameError{name, "dot names are not allowed"}
	case len(name) > MaxNameLen:
		return &NameError{name, fmt.Sprintf("longer than %d bytes", MaxNameLen)}
	case strings.IndexByte(name, 0) >= 0:
		return &NameError{name, "contains NUL"}
	case strings.IndexByte(name, '/') >= 0:
		return &NameError{name, "contains '/'"}
	case !utf8.ValidString(name):
		return &NameError{name, "not valid UTF-8"}
	}
	return nil
}

// Path is a validated sequence of names from the root. The empty Path is
// the root directory itself.
type Path []string

// ParsePath splits a slash-separated path. One leading and one trailing
// slash are ignored ("/docs/" is "docs"); every component must be a
// ValidName, so "a//b", "a/../b" and "./a" are refused rather than
// cleaned: a path means exactly one thing or nothing.
func ParsePath(s string) (Path, error) {
	if len(s) > MaxPathLen {
		return nil, &NameError{s, fmt.Sprintf("path longer than %d bytes", MaxPathLen)}
	}
	orig := s
	s = strings.TrimPrefix(s, "/")
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		if len(orig) > 1 {
			return nil, &NameError{orig, "empty component"}
		}
		return Path{}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) > MaxPathDepth {
		return nil, &NameError{s, fmt.Sprintf("more than %d components", MaxPathDepth)}
	}
	for _, p := range parts {
		if err := ValidName(p); err != nil {
			return nil, fmt.Errorf("path %q: %w", clip(s), err)
		}
	}
	return Path(parts), nil
}

// MustParsePath is ParsePath for constants in tests and examples.
func MustParsePath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the path with a leading slash ("/" for the root).
func (p Path) String() string {
	return "/" + strings.Join(p, "/")
}
