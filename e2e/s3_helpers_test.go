package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
)

const (
	s3Access = "aidbtestkey"
	s3Secret = "aidbtestsecret0123456789"
)

// s3Server is a versitygw S3 server of one test: its own port and folder,
// stopped (and restartable) by the test, stopped at its end.
type s3Server struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// versitygwBin finds versitygw, which TestMain put on PATH (a Go tool of
// ../tools/go.mod): a missing one fails the test, never skips it.
func versitygwBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("versitygw")
	require.NoError(t, err, "versitygw should be on PATH: TestMain builds it from ../tools/go.mod")
	return p
}

// newS3Server starts versitygw for t and registers its stop.
func newS3Server(t *testing.T) *s3Server {
	t.Helper()
	s := &s3Server{t: t, bin: versitygwBin(t), port: freePort(t), dir: t.TempDir()}
	t.Cleanup(s.stop)
	s.start()
	return s
}

// start runs the server and waits (up to 30 s) until it accepts
// connections.
func (s *s3Server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "--access", s3Access, "--secret", s3Secret, "--port", "127.0.0.1:"+strconv.Itoa(s.port), "posix", s.dir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	require.NoError(s.t, cmd.Start())
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	waitFor(s.t, 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

// kill ends the server at once (SIGKILL), as a crash would.
func (s *s3Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *s3Server) stop() { s.kill() }

func (s *s3Server) addr() string     { return "127.0.0.1:" + strconv.Itoa(s.port) }
func (s *s3Server) endpoint() string { return "http://" + s.addr() }

// client is an S3 client of the test's own, to make buckets and look.
func (s *s3Server) client(endpoint string) *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s3Access, s3Secret, "")})
}

// bucket creates a bucket.
func (s *s3Server) bucket(name string) {
	s.t.Helper()
	_, err := s.client(s.endpoint()).CreateBucket(s.t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)})
	require.NoError(s.t, err)
}

// keys lists every object key in a bucket.
func (s *s3Server) keys(bucket string) []string {
	s.t.Helper()
	out, err := s.client(s.endpoint()).ListObjectsV2(s.t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	require.NoError(s.t, err)
	keys := []string{}
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// useRepository points the project's aidb at url on endpoint, with the
// server's credentials and no shared AWS files of the machine.
func (p *project) useRepository(endpoint, url string) {
	p.env = append(p.env,
		"AIDB_REPOSITORY="+url,
		"AWS_ENDPOINT_URL_S3="+endpoint,
		"AWS_ENDPOINT_URL=",
		"AWS_ACCESS_KEY_ID="+s3Access,
		"AWS_SECRET_ACCESS_KEY="+s3Secret,
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(p.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(p.dir, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	)
}

// syntheticBackup writes a backup file of db created at, with body, and
// its manifest, into dir (the catalog, push and prune read no more).
func syntheticBackup(t *testing.T, dir, db string, at time.Time, body []byte) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	name := backupfile.Name(db, backupfile.Full, at, backupfile.None)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), body, 0o600))
	sum := sha256.Sum256(body)
	b, err := json.Marshal(manifest.Manifest{Format: manifest.Format, Database: db, Kind: backupfile.Full, File: name,
		Created: at, Compression: backupfile.None, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+manifest.Suffix), b, 0o600))
	return name
}

// cutProxy forwards connections to target and reports (once) when more
// than after bytes went from clients to the server.
type cutProxy struct {
	l       net.Listener
	sent    atomic.Int64
	reached chan struct{}
	once    sync.Once
}

func newCutProxy(t *testing.T, target string, after int64) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{l: l, reached: make(chan struct{})}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				s, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer func() { _ = s.Close() }()
				go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := s.Write(buf[:n]); werr != nil {
							return
						}
						if p.sent.Add(int64(n)) > after {
							p.once.Do(func() { close(p.reached) })
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *cutProxy) endpoint() string { return "http://" + p.l.Addr().String() }

// waitReached waits up to d for the proxy to have forwarded its bytes.
func (p *cutProxy) waitReached(ctx context.Context, d time.Duration) error {
	select {
	case <-p.reached:
		return nil
	case <-time.After(d):
		return fmt.Errorf("the proxy did not forward its bytes within %s", d)
	case <-ctx.Done():
		return ctx.Err()
	}
}
