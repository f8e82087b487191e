package weights

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Progress is told how many bytes of how many (-1 when unknown) have
// arrived; done is called once at the end.
type Progress interface {
	Start(name string, have, total int64)
	Add(n int)
	Done()
}

type noProgress struct{}

func (noProgress) Start(string, int64, int64) {}
func (noProgress) Add(int)                    {}
func (noProgress) Done()                      {}

// Download fetches url to dest and checks its SHA-256 (hex). The bytes go
// to dest+".part" first: an interrupted download resumes from there with an
// HTTP range request (or restarts when the server ignores ranges), and dest
// appears only once complete and verified. A file already at dest with the
// right hash is kept as it is.
func Download(ctx context.Context, client *http.Client, url, sum, dest string, p Progress) error {
	if client == nil {
		client = http.DefaultClient
	}
	if p == nil {
		p = noProgress{}
	}
	sum = strings.ToLower(sum)
	if ok, _ := hasHash(dest, sum); ok {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	part := dest + ".part"
	for attempt := 0; ; attempt++ {
		_, statErr := os.Stat(part)
		resumed := statErr == nil
		err := fetch(ctx, client, url, part, p)
		if errors.Is(err, errRangeDone) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("download %s: %w (the partial file %s is kept; run again to resume)", url, err, part)
		}
		got, err := FileSHA256(part)
		if err != nil {
			return fmt.Errorf("download %s: %w", url, err)
		}
		if got != sum {
			os.Remove(part)
			if resumed && attempt == 0 {
				// A stale partial file can poison a resume: start over once.
				continue
			}
			return fmt.Errorf("download %s: SHA-256 is %s, want %s (the download was removed)", url, got, sum)
		}
		if err := os.Rename(part, dest); err != nil {
			return fmt.Errorf("download %s: %w", url, err)
		}
		return nil
	}
}

var errRangeDone = errors.New("range not satisfiable")

// fetch appends the rest of url to part, or rewrites part when the server
// sends the whole file.
func fetch(ctx context.Context, client *http.Client, url, part string, p Progress) error {
	var have int64
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE
	switch resp.StatusCode {
	case http.StatusOK:
		have = 0
		flags |= os.O_TRUNC
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(have, 10)+"-") {
			return fmt.Errorf("server resumed at the wrong offset (%s)", resp.Header.Get("Content-Range"))
		}
		flags |= os.O_APPEND
	case http.StatusRequestedRangeNotSatisfiable:
		return errRangeDone // the partial file may already be complete
	default:
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return err
	}
	total := int64(-1)
	if resp.ContentLength >= 0 {
		total = have + resp.ContentLength
	}
	p.Start(filepath.Base(strings.TrimSuffix(part, ".part")), have, total)
	_, err = io.Copy(f, io.TeeReader(resp.Body, progressWriter{p}))
	p.Done()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && total >= 0 {
		if st, serr := os.Stat(part); serr == nil && st.Size() != total {
			err = fmt.Errorf("connection closed after %d of %d bytes", st.Size(), total)
		}
	}
	return err
}

type progressWriter struct{ p Progress }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.Add(len(b))
	return len(b), nil
}

// FileSHA256 is the hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hasHash(path, sum string) (bool, error) {
	got, err := FileSHA256(path)
	if err != nil {
		return false, err
	}
	return got == sum, nil
}
