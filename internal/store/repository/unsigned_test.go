package repository

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// partServer is an S3 endpoint that answers an upload's requests as S3
// does and records the headers of the first request of each kind ("part1"
// for part 1, "copy", ...).
func partServer(t *testing.T) (*httptest.Server, func(kind string) http.Header) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]http.Header{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		kind := r.Method
		switch {
		case q.Has("uploads"):
			kind = "create"
			_, _ = io.WriteString(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
		case q.Has("partNumber"):
			kind = "part" + q.Get("partNumber") // parts go side by side
			sum := sha256.Sum256(body)
			w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
		case q.Has("uploadId") && r.Method == http.MethodPost:
			kind = "complete"
			_, _ = io.WriteString(w, `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>`)
		case r.Header.Get("X-Amz-Copy-Source") != "":
			kind = "copy"
			_, _ = io.WriteString(w, `<CopyObjectResult><ETag>"e"</ETag></CopyObjectResult>`)
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := seen[kind]; !ok {
			seen[kind] = r.Header.Clone()
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func(kind string) http.Header {
		mu.Lock()
		defer mu.Unlock()
		require.Contains(t, seen, kind)
		return seen[kind]
	}
}

// TestPartsGoUnsigned checks the requests the SDK makes for the parts of a
// file streamed as it is written (Upload) and of a local file pushed
// (Put): the body outside the signature (no sha256 of it on either side),
// with a CRC32 checksum the server checks; the other requests stay signed.
// With checksums turned off, parts stay signed: never neither.
func TestPartsGoUnsigned(t *testing.T) {
	t.Parallel()
	big := []byte(strings.Repeat("0123456789abcdef", (PartSize+1000)/16)) // two parts
	for _, tc := range []struct {
		name     string
		checksum aws.RequestChecksumCalculation
		unsigned bool
	}{
		// As Open makes the client (config.LoadDefaultConfig's default).
		{"checksums when supported", aws.RequestChecksumCalculationWhenSupported, true},
		{"checksums when required", aws.RequestChecksumCalculationWhenRequired, false},
	} {
		for _, how := range []string{"Upload", "Put"} {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				srv, seen := partServer(t)
				client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
					RequestChecksumCalculation: tc.checksum, Credentials: credentials.NewStaticCredentialsProvider("a", "s", "")})
				r := New(client, URL{"b", ""}, srv.URL)
				if how == "Upload" {
					u := r.Upload(t.Context(), "x.sql")
					_, err := u.Write(big)
					require.NoError(t, err)
					require.NoError(t, u.Finish(int64(len(big)), sum(big), nil))
					assert.NotEqual(t, "UNSIGNED-PAYLOAD", seen("copy").Get("X-Amz-Content-Sha256"), "other requests stay signed")
				} else {
					require.NoError(t, r.Put(t.Context(), "x.sql", bytes.NewReader(big), int64(len(big)), sum(big)))
				}
				part := seen("part1")
				if tc.unsigned {
					assert.Equal(t, "UNSIGNED-PAYLOAD", part.Get("X-Amz-Content-Sha256"), "a part's body is not signed")
					assert.NotEmpty(t, part.Get("X-Amz-Checksum-Crc32"), "a part carries its CRC32")
				} else {
					sum := sha256.Sum256(big[:PartSize])
					assert.Equal(t, hex.EncodeToString(sum[:]), part.Get("X-Amz-Content-Sha256"), "without a checksum a part is signed")
				}
			})
		}
	}
}
