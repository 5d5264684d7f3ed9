package tree

import "fmt"

// MaxMediaTypeLen bounds the media type an entry may carry.
const MaxMediaTypeLen = 255

// ValidMediaType checks the one spelling of a media type an entry may
// store: type "/" subtype, then parameters, each "; " name "=" value,
// sorted by name with no name twice. Type, subtype and parameter names
// are RFC 9110 tokens in lower case (they are case-insensitive, so one
// spelling is chosen); values are tokens as given (quoted strings are not
// stored). "text/html; charset=utf-8" is valid, "Text/HTML" and
// "text/html;charset=utf-8" are not. The tree gives the string no other
// meaning: who stores it decides what it says.
func ValidMediaType(s string) error {
	if s == "" || len(s) > MaxMediaTypeLen {
		return fmt.Errorf("media type %q: want 1..%d bytes", clip(s), MaxMediaTypeLen)
	}
	i := scanToken(s, 0, true)
	if i == 0 || i == len(s) || s[i] != '/' {
		return fmt.Errorf("media type %q: want a lower-case type, '/' and a subtype", clip(s))
	}
	j := scanToken(s, i+1, true)
	if j == i+1 {
		return fmt.Errorf("media type %q: empty or upper-case subtype", clip(s))
	}
	last := ""
	for j < len(s) {
		if len(s)-j < 2 || s[j] != ';' || s[j+1] != ' ' {
			return fmt.Errorf("media type %q: parameters must follow as \"; name=value\"", clip(s))
		}
		k := scanToken(s, j+2, true)
		if k == j+2 || k == len(s) || s[k] != '=' {
			return fmt.Errorf("media type %q: a parameter needs a lower-case name and '='", clip(s))
		}
		name := s[j+2 : k]
		if name <= last {
			return fmt.Errorf("media type %q: parameters must be sorted by name, each once", clip(s))
		}
		last = name
		j = scanToken(s, k+1, false)
		if j == k+1 {
			return fmt.Errorf("media type %q: parameter %s has an empty or quoted value", clip(s), name)
		}
	}
	return nil
}

// scanToken returns the end of the run of token characters at s[i:];
// lower allows no upper-case letters.
func scanToken(s string, i int, lower bool) int {
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z':
			if lower {
				return i
			}
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
			c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~':
		default:
			return i
		}
	}
	return i
}
