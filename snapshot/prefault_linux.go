package snapshot

import "syscall"

// madvPopulateRead is MADV_POPULATE_READ (Linux 5.14): fault every page of
// the mapping in, in one system call.
const madvPopulateRead = 22

// prefault populates the mapping's page tables before verification reads
// it. A page fault holds the goroutine's P; a system call releases it, so
// the serving goroutines keep running while the kernel maps the file. On
// older kernels (EINVAL) the pages fault in as they are read.
func prefault(b []byte) {
	if len(b) > 0 {
		_ = syscall.Madvise(b, madvPopulateRead)
	}
}
