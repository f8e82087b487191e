package torch

import (
	"os"
	"testing"
)

// TestMain serves LoadArchive's child process: the tests load TorchScript
// archives, which LoadArchive reads by starting this binary again.
func TestMain(m *testing.M) {
	ServeArchiveChild()
	os.Exit(m.Run())
}
