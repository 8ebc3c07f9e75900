// Package atomicfile replaces files so that a reader, or a crash at any
// moment, sees either the old content or the whole new content, never a
// part: temporary file in the same directory, fsync, rename, fsync of the
// directory. Snapshots, manifests, torrents, rows files and reports all go
// through it, so the rule lives in one place.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write creates path through a temporary file in the same directory: fill
// writes the content, then the file is fsynced, made 0644, renamed into
// place and the directory fsynced. A failure at any step removes the
// temporary file and leaves any existing file at path untouched.
func Write(path string, fill func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// WriteBytes is Write for content already in memory, the common case.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}
