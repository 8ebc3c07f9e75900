package cliflag

import (
	"fmt"
	"os"
	"strings"

	"github.com/adedge/adedge/internal/atomicfile"
)

// Usage blocks in a document (README.md) are the binaries' own help text
// between two marker lines, so the document cannot drift from the flags:
//
//	<!-- usage: adedge -h -->
//	```
//	...the output of adedge -h...
//	```
//	<!-- end usage -->
//
// A test per binary calls CheckDoc; `make readme` runs those tests with
// -update to rewrite the blocks.

// CheckDoc compares the block named name in the file at path with body;
// with update it rewrites the block instead (atomically).
func CheckDoc(path, name, body string, update bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	begin := "<!-- usage: " + name + " -->\n"
	const end = "<!-- end usage -->\n"
	i := strings.Index(doc, begin)
	if i < 0 {
		return fmt.Errorf("%s: no %q marker line", path, strings.TrimSpace(begin))
	}
	j := strings.Index(doc[i:], end)
	if j < 0 {
		return fmt.Errorf("%s: %q has no %q after it", path, strings.TrimSpace(begin), strings.TrimSpace(end))
	}
	want := begin + "```\n" + strings.TrimRight(body, "\n") + "\n```\n"
	got := doc[i : i+j]
	if got == want {
		return nil
	}
	if !update {
		return fmt.Errorf("%s: the block %q differs from the binary's help text; run `make readme`:\n--- README\n%s\n--- %s\n%s",
			path, name, got, name, want)
	}
	return atomicfile.Write(path, func(f *os.File) error {
		_, err := f.WriteString(doc[:i] + want + doc[i+j:])
		return err
	})
}
