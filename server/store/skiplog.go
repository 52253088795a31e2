package store

// warnSkipped logs msg at warn at most once per sparselog.Every (and at
// debug otherwise): how many records a backend hands the store that it
// must skip is the backend's choice.
func (s *Store) warnSkipped(msg string, args ...any) {
	s.skips.Warn(s.log, msg, args...)
}
