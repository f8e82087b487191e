package weights

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func blob() ([]byte, string) {
	b := bytes.Repeat([]byte("madclip weights "), 40000) // 640 kB
	h := sha256.Sum256(b)
	return b, hex.EncodeToString(h[:])
}

type server struct {
	*httptest.Server
	served  atomic.Int64 // bytes sent
	ranges  atomic.Int64 // range requests seen
	noRange bool         // ignore Range headers
	cutAt   int64        // close the connection after this many bytes (0: never)
}

func newServer(t *testing.T, data []byte, configure func(*server)) *server {
	s := &server{}
	if configure != nil {
		configure(s)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/w.pt" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Range") != "" {
			s.ranges.Add(1)
		}
		if s.noRange {
			r.Header.Del("Range")
		}
		if s.cutAt > 0 {
			w.Header().Set("Content-Length", "640000")
			w.WriteHeader(http.StatusOK)
			w.Write(data[:s.cutAt])
			s.served.Add(s.cutAt)
			if hj, ok := w.(http.Hijacker); ok {
				conn, _, _ := hj.Hijack()
				conn.Close()
			}
			return
		}
		cw := &countingWriter{ResponseWriter: w, n: &s.served}
		http.ServeContent(cw, r, "w.pt", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(s.Close)
	return s
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

type recorder struct{ starts, adds, dones int }

func (r *recorder) Start(string, int64, int64) { r.starts++ }
func (r *recorder) Add(int)                    { r.adds++ }
func (r *recorder) Done()                      { r.dones++ }

func TestDownloadFresh(t *testing.T) {
	data, sum := blob()
	s := newServer(t, data, nil)
	dest := filepath.Join(t.TempDir(), "sub", "w.pt")
	rec := &recorder{}
	if err := Download(context.Background(), s.URL+"/w.pt", sum, dest, DownloadOptions{Progress: rec}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, data) {
		t.Fatal("downloaded bytes differ")
	}
	if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) {
		t.Error(".part left behind")
	}
	if rec.starts != 1 || rec.dones != 1 || rec.adds == 0 {
		t.Errorf("progress %+v", rec)
	}
	// A second call finds the verified file and fetches nothing.
	before := s.served.Load()
	if err := Download(context.Background(), s.URL+"/w.pt", sum, dest, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.served.Load() != before {
		t.Error("complete file downloaded again")
	}
	// A different file at dest is someone else's: refused, left as it is,
	// and nothing fetched.
	os.WriteFile(dest, []byte("my own model"), 0o644)
	err := Download(context.Background(), s.URL+"/w.pt", sum, dest, DownloadOptions{})
	if err == nil || !strings.Contains(err.Error(), dest) || !strings.Contains(err.Error(), "refusing to replace it") {
		t.Errorf("a different file at the destination: %v", err)
	}
	if got, _ := os.ReadFile(dest); string(got) != "my own model" || s.served.Load() != before {
		t.Errorf("the file there became %.20q after %d bytes served", got, s.served.Load()-before)
	}
}

func TestDownloadResumes(t *testing.T) {
	data, sum := blob()
	dir := t.TempDir()
	dest := filepath.Join(dir, "w.pt")
	// An interrupted first attempt: the connection drops after 100 kB.
	cut := newServer(t, data, func(s *server) { s.cutAt = 100000 })
	err := Download(context.Background(), cut.URL+"/w.pt", sum, dest, DownloadOptions{})
	if err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted download: %v", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("incomplete file under the final name")
	}
	if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != 100000 {
		t.Fatalf("partial file: %v", err)
	}
	// The next attempt asks only for the rest.
	s := newServer(t, data, nil)
	if err := Download(context.Background(), s.URL+"/w.pt", sum, dest, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.ranges.Load() != 1 || s.served.Load() != int64(len(data))-100000 {
		t.Errorf("resume: %d range requests, %d bytes served", s.ranges.Load(), s.served.Load())
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, data) {
		t.Error("resumed file differs")
	}
}

func TestDownloadRestartsWithoutRanges(t *testing.T) {
	data, sum := blob()
	dest := filepath.Join(t.TempDir(), "w.pt")
	os.WriteFile(dest+".part", data[:5000], 0o644)
	s := newServer(t, data, func(s *server) { s.noRange = true })
	if err := Download(context.Background(), s.URL+"/w.pt", sum, dest, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, data) {
		t.Error("restarted file differs")
	}
}

// TestDownloadPartialHardLink: a partial file that is another name of some
// file is not written into: the other name keeps its bytes.
func TestDownloadPartialHardLink(t *testing.T) {
	data, sum := blob()
	dir := t.TempDir()
	dest := filepath.Join(dir, "w.pt")
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("my notes"), 0o644)
	if err := os.Link(notes, dest+".part"); err != nil {
		t.Skip("no hard links here:", err)
	}
	s := newServer(t, data, nil)
	if err := Download(context.Background(), s.URL+"/w.pt", sum, dest, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Error("downloaded file differs")
	}
	if b, _ := os.ReadFile(notes); string(b) != "my notes" {
		t.Errorf("the hard-linked file became %.20q", b)
	}
}

func TestDownloadStalePartial(t *testing.T) {
	data, sum := blob()
	dest := filepath.Join(t.TempDir(), "w.pt")
	os.WriteFile(dest+".part", []byte("garbage from another file"), 0o644)
	s := newServer(t, data, nil)
	if err := Download(context.Background(), s.URL+"/w.pt", sum, dest, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, data) {
		t.Error("file differs after a stale partial")
	}
}

func TestDownloadErrors(t *testing.T) {
	data, _ := blob()
	s := newServer(t, data, nil)
	dir := t.TempDir()
	dest := filepath.Join(dir, "w.pt")
	wrong := strings.Repeat("0", 64)
	err := Download(context.Background(), s.URL+"/w.pt", wrong, dest, DownloadOptions{})
	if err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("checksum: %v", err)
	}
	for _, p := range []string{dest, dest + ".part"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after a checksum failure", p)
		}
	}
	if err := Download(context.Background(), s.URL+"/missing.pt", wrong, dest, DownloadOptions{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: %v", err)
	}
	// An unreachable server: the URL once, and what to do without network.
	err = Download(context.Background(), "http://127.0.0.1:1/w.pt", wrong, dest, DownloadOptions{})
	if err == nil || strings.Count(err.Error(), "127.0.0.1:1/w.pt") != 1 || !strings.Contains(err.Error(), "madclip weights convert") {
		t.Errorf("unreachable server: %v", err)
	}
	// A malformed checksum is refused before anything is fetched.
	before := s.served.Load()
	for _, bad := range []string{"xyz", strings.Repeat("g", 64), strings.Repeat("0", 63)} {
		if err := Download(context.Background(), s.URL+"/w.pt", bad, dest, DownloadOptions{}); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
			t.Errorf("checksum %q: %v", bad, err)
		}
	}
	if s.served.Load() != before {
		t.Error("a download with a malformed checksum fetched bytes")
	}
	// A named pipe where the partial file or the destination goes is
	// refused, not waited on.
	_, sum := blob()
	for _, p := range []string{dest + ".part", dest} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Download(context.Background(), s.URL+"/w.pt", sum, dest, DownloadOptions{}); err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("a named pipe at %s: %v", p, err)
		}
		os.Remove(p)
	}
}

// TestDownloadBounds: a stalled server, an endless body and an announced
// size over the limit all end in an error, with no partial file claimed.
func TestDownloadBounds(t *testing.T) {
	sum := strings.Repeat("0", 64)
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("abc"))
		w.(http.Flusher).Flush()
		select { // then nothing, until the client gives up
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer stall.Close()
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 4096)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000000000000")
		w.WriteHeader(http.StatusOK)
	}))
	defer huge.Close()
	for _, c := range []struct {
		name, url, want string
		o               DownloadOptions
	}{
		{"stalled", stall.URL, "stalled", DownloadOptions{IdleTimeout: 300 * time.Millisecond}},
		{"endless", endless.URL, "more than 100000 bytes", DownloadOptions{MaxBytes: 100000}},
		{"huge", huge.URL, "announces 10000000000000 bytes", DownloadOptions{}},
	} {
		dest := filepath.Join(t.TempDir(), "w.pt")
		start := time.Now()
		err := Download(context.Background(), c.url+"/w.pt", sum, dest, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", c.name, d)
		}
		if _, serr := os.Stat(dest + ".part"); serr == nil && !strings.Contains(err.Error(), "kept") {
			t.Errorf("%s: a partial file is left but the message does not say so: %v", c.name, err)
		} else if serr != nil && err != nil && strings.Contains(err.Error(), "kept") {
			t.Errorf("%s: the message claims a partial file that is not there: %v", c.name, err)
		}
		if _, serr := os.Stat(dest); serr == nil {
			t.Errorf("%s: %s written", c.name, dest)
		}
	}
}
