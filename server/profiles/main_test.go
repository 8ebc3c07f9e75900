package profiles

import (
	"os"
	"testing"

	"github.com/adedge/adedge/internal/aerokit"
)

// One real Aerospike server (the kit) for the package's tests; see
// aerokit.Shared.
func TestMain(m *testing.M) { os.Exit(aerokit.Main(m)) }
