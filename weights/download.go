package weights

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"madclip/internal/regularfile"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
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

// DownloadOptions bound a download; zero values take the defaults.
type DownloadOptions struct {
	Client *http.Client // default: connect, TLS and response-header timeouts
	// MaxBytes is the largest file accepted (default 2 GiB): a body or a
	// Content-Length beyond it is refused, so an endless answer cannot fill
	// the disk.
	MaxBytes int64
	// IdleTimeout ends a download during which no byte arrived for this
	// long (default one minute): a stalled server cannot hang it.
	IdleTimeout time.Duration
	Progress    Progress
}

// Download fetches url to dest and checks its SHA-256 (hex). The bytes go
// to dest+".part" first: an interrupted download resumes from there with an
// HTTP range request (or restarts when the server ignores ranges), and dest
// appears only once complete and verified. A file already at dest with the
// right hash is kept as it is; any other file there is refused.
func Download(ctx context.Context, url, sum, dest string, o DownloadOptions) error {
	if o.Client == nil {
		o.Client = defaultClient
	}
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 2 << 30
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = time.Minute
	}
	sum = strings.ToLower(sum)
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("download %s: the expected SHA-256 %q is not 64 hex digits", url, sum)
	}
	part := dest + ".part"
	// The destination may be a link to a regular file (it is replaced by
	// the download); the partial file is ours and never followed.
	if st, err := os.Stat(dest); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("download %s: %s is %s, not a regular file; refusing to write there", url, dest, regularfile.Kind(st.Mode()))
	}
	if st, err := os.Lstat(part); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("download %s: %s is %s, not a regular file; refusing to write there", url, part, regularfile.Kind(st.Mode()))
	} else if err == nil && hardLinked(st) {
		// Writing into it would change the file under its other name:
		// this name goes, the download starts afresh.
		if err := os.Remove(part); err != nil {
			return fmt.Errorf("download %s: %w", url, err)
		}
	}
	if _, err := os.Stat(dest); err == nil {
		// Kept if it is the file asked for; anything else there is not
		// ours to replace (a download appears only once verified).
		if ok, _ := hasHash(dest, sum); ok {
			return nil
		}
		return fmt.Errorf("download %s: %s exists and is not the expected file (its SHA-256 differs); refusing to replace it (remove it or choose another name)", url, dest)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	for attempt := 0; ; attempt++ {
		_, statErr := os.Stat(part)
		resumed := statErr == nil
		err := fetch(ctx, url, part, o)
		if errors.Is(err, errRangeDone) {
			err = nil
		}
		if errors.Is(err, errTooLarge) {
			os.Remove(part)
		}
		if err != nil {
			if st, serr := os.Stat(part); serr == nil && st.Size() > 0 {
				return fmt.Errorf("download %s: %w (the partial file %s is kept; run again to resume)", url, err, part)
			}
			os.Remove(part)
			return fmt.Errorf("download %s: %w", url, err)
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
func fetch(ctx context.Context, url, part string, o DownloadOptions) error {
	var have int64
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The watchdog cancels the request when no byte arrives for IdleTimeout.
	idle := time.AfterFunc(o.IdleTimeout, func() { cancel(errStalled(o.IdleTimeout)) })
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return cause
		}
		var ue *neturl.Error
		if errors.As(err, &ue) { // its "Get URL:" repeats what the caller says
			err = ue.Err
		}
		var dns *net.DNSError
		var op *net.OpError
		if errors.As(err, &dns) || errors.As(err, &op) {
			return fmt.Errorf("%w (no network here? fetch the file on another machine and convert it with madclip weights convert, or give a reachable copy with --url and --sha256)", err)
		}
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
	total := int64(-1)
	if resp.ContentLength >= 0 {
		total = have + resp.ContentLength
	}
	if total > o.MaxBytes {
		return fmt.Errorf("the server announces %d bytes, over the %d expected at most: %w", total, o.MaxBytes, errTooLarge)
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return err
	}
	p := o.Progress
	p.Start(filepath.Base(strings.TrimSuffix(part, ".part")), have, total)
	body := io.LimitReader(resp.Body, o.MaxBytes-have+1)
	var n int64
	n, err = io.Copy(f, io.TeeReader(body, progressWriter{p, idle, o.IdleTimeout}))
	p.Done()
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
	} else if have+n > o.MaxBytes {
		err = fmt.Errorf("the server sent more than %d bytes: %w", o.MaxBytes, errTooLarge)
	}
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

// progressWriter reports bytes as they arrive and rearms the idle
// watchdog.
type progressWriter struct {
	p     Progress
	idle  *time.Timer
	after time.Duration
}

func (w progressWriter) Write(b []byte) (int, error) {
	w.idle.Reset(w.after)
	w.p.Add(len(b))
	return len(b), nil
}

var errTooLarge = errors.New("not the file expected")

type errStalled time.Duration

func (e errStalled) Error() string {
	return fmt.Sprintf("no data for %s: the server stalled", time.Duration(e))
}

// defaultClient gives up on a server that does not connect, handshake or
// answer in time; the body's pace is watched by fetch.
var defaultClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: time.Minute,
}}

// FileSHA256 is the hex SHA-256 of a regular file (a device such as
// /dev/zero is refused rather than hashed forever).
func FileSHA256(path string) (string, error) {
	f, err := regularfile.Open(path)
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

// hardLinked says whether the file has other names than the one statted.
func hardLinked(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && sys.Nlink > 1
}
