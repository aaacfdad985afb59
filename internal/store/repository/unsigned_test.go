package repository

import (
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

// TestPartsGoUnsigned checks the requests the SDK makes for an upload's
// parts: the body outside the signature (no sha256 of it on either side),
// with a CRC32 checksum the server checks; the other requests stay signed.
// The server records the headers and answers as S3 does.
func TestPartsGoUnsigned(t *testing.T) {
	t.Parallel()
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
			kind = "part"
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
		if _, ok := seen[kind]; !ok { // the first of each kind
			seen[kind] = r.Header.Clone()
		}
		mu.Unlock()
	}))
	defer srv.Close()
	// As Open makes it (config.LoadDefaultConfig): checksums when the
	// operation supports them.
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		Credentials: credentials.NewStaticCredentialsProvider("a", "s", "")})
	r := New(client, URL{"b", ""}, srv.URL)

	big := []byte(strings.Repeat("0123456789abcdef", (PartSize+1000)/16)) // two parts
	u := r.Upload(t.Context(), "x.sql")
	_, err := u.Write(big)
	require.NoError(t, err)
	require.NoError(t, u.Finish(int64(len(big)), sum(big), nil))

	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, seen, "part")
	assert.Equal(t, "UNSIGNED-PAYLOAD", seen["part"].Get("X-Amz-Content-Sha256"), "a part's body is not signed")
	assert.NotEmpty(t, seen["part"].Get("X-Amz-Checksum-Crc32"), "a part carries its CRC32")
	require.Contains(t, seen, "copy")
	assert.NotEqual(t, "UNSIGNED-PAYLOAD", seen["copy"].Get("X-Amz-Content-Sha256"), "other requests stay signed")
}
