package forward

// The package does without fmt (see the package documentation). Errors
// carry what was attempted through opError instead of fmt.Errorf's %w,
// and log lines are put together by hand.

// opError is err, with what was being attempted when it happened.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }

func (e *opError) Unwrap() error { return e.err }

// wrap returns err as the cause of a failure to do op; errors.Is and
// errors.As see through it.
func wrap(op string, err error) error {
	return &opError{op: op, err: err}
}

// textError is an error made of words only.
type textError string

func (e textError) Error() string { return string(e) }
