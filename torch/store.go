package torch

import "fmt"

// Store owns a set of named parameters (a model's weights or its trainable
// tensors), keeps their order, and frees them together.
type Store struct {
	names  []string
	byName map[string]*Tensor
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{byName: map[string]*Tensor{}} }

// Add takes ownership of t under name: it leaves its scope and lives until
// the store is freed.
func (s *Store) Add(name string, t *Tensor) error {
	if err := t.Err(); err != nil {
		return fmt.Errorf("parameter %s: %w", name, err)
	}
	if _, dup := s.byName[name]; dup {
		return fmt.Errorf("parameter %s added twice", name)
	}
	s.names = append(s.names, name)
	s.byName[name] = t.Persist()
	return nil
}

// Get returns the parameter called name.
func (s *Store) Get(name string) (*Tensor, bool) {
	t, ok := s.byName[name]
	return t, ok
}

// Names lists the parameters in the order they were added.
func (s *Store) Names() []string { return append([]string(nil), s.names...) }

// Tensors lists the parameters in the order they were added.
func (s *Store) Tensors() []*Tensor {
	out := make([]*Tensor, len(s.names))
	for i, n := range s.names {
		out[i] = s.byName[n]
	}
	return out
}

// Map returns the parameters by name (the store keeps owning them).
func (s *Store) Map() map[string]*Tensor {
	m := make(map[string]*Tensor, len(s.byName))
	for k, v := range s.byName {
		m[k] = v
	}
	return m
}

// Len is the number of parameters.
func (s *Store) Len() int { return len(s.names) }

// Remove frees the parameter called name and forgets it.
func (s *Store) Remove(name string) {
	t, ok := s.byName[name]
	if !ok {
		return
	}
	t.Free()
	delete(s.byName, name)
	for i, n := range s.names {
		if n == name {
			s.names = append(s.names[:i], s.names[i+1:]...)
			break
		}
	}
}

// Free releases every parameter.
func (s *Store) Free() {
	for _, t := range s.byName {
		t.Free()
	}
	s.names = nil
	s.byName = map[string]*Tensor{}
}
