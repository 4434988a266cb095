package pattern

import "strings"

// FieldError is one problem in a pattern, tied to the event field it is
// about. Path is the dotted event path ("detail.operation"); "$or" levels are
// left out because they are not event fields, so a problem inside an "$or"
// branch names the field a reader would look for in the event. Path is empty
// for problems with the document as a whole.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in one pattern. Parse and the contract checks
// report all of them at once so a rule author fixes a file in one pass rather
// than one error per deploy attempt.
type Errors []*FieldError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (es *Errors) add(path, format string) {
	*es = append(*es, &FieldError{Path: path, Msg: format})
}

// JoinPath extends a dotted event path (as FieldError.Path shows it) by one
// field name.
func JoinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}
