package ship

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client runs statements against ClickHouse's HTTP interface.
type Client struct {
	T    *Target
	HTTP *http.Client
}

// NewClient returns a client for t with a per-request timeout.
func NewClient(t *Target, timeout time.Duration) *Client {
	return &Client{T: t, HTTP: &http.Client{Timeout: timeout}}
}

// Error is an answer other than 200: the status and ClickHouse's message.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("clickhouse: HTTP %d: %s", e.Status, e.Msg) }

// maxAnswer bounds what is read of an answer (reports are small; errors
// are one line).
const maxAnswer = 64 << 20

// Exec POSTs query with body as its data (nil for none) and returns the
// answer. inDB sets the session database (not for CREATE DATABASE).
func (c *Client) Exec(ctx context.Context, query string, body []byte, inDB bool) ([]byte, error) {
	u := c.T.queryURL(query, inDB)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: reading the answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		return nil, &Error{Status: res.StatusCode, Msg: msg}
	}
	return out, nil
}

// Query runs a read-only statement in the database.
func (c *Client) Query(ctx context.Context, query string) ([]byte, error) {
	return c.Exec(ctx, query, nil, true)
}

// EnsureSchema creates the database and table when missing.
func (c *Client) EnsureSchema(ctx context.Context) error {
	for i, st := range Schema(c.T.Database) {
		if _, err := c.Exec(ctx, st, nil, i > 0); err != nil {
			return err
		}
	}
	return nil
}
