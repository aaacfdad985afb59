package repository

import (
	"context"
	"errors"
	"fmt"
	"github.com/aws/smithy-go/logging"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/aidb/aidb/internal/fault"
)

// The bounds on one request: a server that does not answer is an error
// within seconds, after a few tries with backoff for transient errors.
const (
	// MaxAttempts is how often a request is tried (transient errors only:
	// connection failures, 5xx, throttling).
	MaxAttempts = 3
	// maxBackoff caps the wait between tries.
	maxBackoff = 2 * time.Second
	// dialTimeout bounds a connection attempt.
	dialTimeout = 3 * time.Second
	// headerTimeout bounds the wait for a response's headers once a
	// request is sent (a part of PartSize included).
	headerTimeout = 60 * time.Second
)

// Open connects to the repository at u as the AWS tools would: the
// credentials, region, profile and endpoint come from the environment
// and the shared config files (an endpoint from AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL, or the profile's, means an S3-compatible server,
// addressed by path). With no region anywhere, us-east-1 (what
// S3-compatible servers expect). It checks the bucket first (Check).
func Open(ctx context.Context, u URL) (*Repository, error) {
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = headerTimeout })
	cfg, err := config.LoadDefaultConfig(ctx,
		// The SDK logs to stderr by itself (an EC2 metadata fallback
		// warning, say); a library of aidb's prints nothing: what went
		// wrong comes back as the error.
		config.WithLogger(logging.Nop{}),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = MaxAttempts
				o.MaxBackoff = maxBackoff
			})
		}))
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("open repository %s: read the AWS settings: %w", u, err))
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := os.Getenv("AWS_ENDPOINT_URL_S3")
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = endpoint != "" })
	r := New(client, u, endpoint)
	if err := r.Check(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// server names where the repository is, for messages.
func (r *Repository) server() string {
	if r.endpoint != "" {
		return r.endpoint
	}
	return "AWS S3"
}

// classify turns an object storage error into one that says what was
// wrong and what to change, with its fault kind: a missing bucket, refused
// or missing credentials and a missing object are bad input (nothing was
// changed); a server that cannot be reached is an operation that failed.
func (r *Repository) classify(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	code, status := "", 0
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	switch {
	case code == "NoSuchBucket" || (code == "NotFound" || status == http.StatusNotFound) && what == "open repository "+r.url.String():
		return fault.BadInput(fmt.Errorf("%s: the bucket %q does not exist at %s: create it, or correct the repository URL", what, r.url.Bucket, r.server()))
	case code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound:
		return fault.BadInput(fmt.Errorf("%s: no such file in the repository: %w", what, fs.ErrNotExist))
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "AccessDenied" || code == "Forbidden" ||
		code == "InvalidToken" || code == "ExpiredToken" || code == "InvalidClientTokenId" || status == http.StatusForbidden || status == http.StatusUnauthorized:
		if code == "" {
			code = http.StatusText(status)
		}
		return fault.BadInput(fmt.Errorf("%s: %s refused the credentials (%s): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and that they may use the bucket %q", what, r.server(), code, r.url.Bucket))
	case isNoCredentials(err):
		return fault.BadInput(fmt.Errorf("%s: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared config file: %w", what, err))
	case code == "" && status == 0:
		return fmt.Errorf("%s: cannot reach %s (tried %d times): %w", what, r.server(), MaxAttempts, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isNoCredentials says the SDK found no credentials at all: signing
// failed (a *v4.SigningError), or resolving the identity did, which the
// SDK reports in a plain error whose text is all there is to match.
func isNoCredentials(err error) bool {
	var sig *v4.SigningError
	return errors.As(err, &sig) || strings.Contains(err.Error(), "get credentials:")
}
