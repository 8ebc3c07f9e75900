package profiles

import "context"

// noneStore is the store for edges without profiles: every read is a miss.
type noneStore struct{ counters }

// NewNone returns a store with no profiles: Get always returns ErrNotFound
// and IncrementCap does nothing. It never blocks and never allocates.
func NewNone() Store { return &noneStore{} }

func (s *noneStore) Get(_ context.Context, _ string, dst *Profile) error {
	dst.Reset()
	return s.countGet(ErrNotFound)
}

func (s *noneStore) IncrementCap(context.Context, string, string, uint32, int64) error { return nil }

func (s *noneStore) Name() string { return "none" }

func (s *noneStore) Close() error { return nil }

// InMemory implements profiles.InMemory: Get never blocks.
func (s *noneStore) InMemory() {}
