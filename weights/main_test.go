package weights

import (
	"os"
	"testing"

	"madclip/torch"
)

// TestMain serves LoadArchive's child process: the tests load TorchScript
// archives, which LoadArchive reads by starting this binary again.
func TestMain(m *testing.M) {
	torch.ServeArchiveChild()
	os.Exit(m.Run())
}
