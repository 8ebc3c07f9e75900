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

// EnsureSchema creates the database, the events table and the rollups
// when missing, and adds the columns a table made for an older record
// version lacks (18.16 has no ADD COLUMN IF NOT EXISTS: it asks
// system.columns).
func (c *Client) EnsureSchema(ctx context.Context) error {
	for i, st := range Schema(c.T.Database) {
		if _, err := c.Exec(ctx, st, nil, i > 0); err != nil {
			return err
		}
	}
	out, err := c.Query(ctx, "SELECT name FROM system.columns WHERE database = '"+escapeString(c.T.Database)+"' AND table = '"+Table+"' FORMAT TabSeparated")
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, n := range strings.Split(string(out), "\n") {
		have[n] = true
	}
	prev := ""
	for _, col := range Columns {
		if !have[col.Name] {
			st := "ALTER TABLE " + c.T.TableName() + " ADD COLUMN " + col.Name + " " + col.Type
			if prev != "" {
				st += " AFTER " + prev
			}
			if _, err := c.Exec(ctx, st, nil, true); err != nil {
				return fmt.Errorf("adding column %s: %w", col.Name, err)
			}
		}
		prev = col.Name
	}
	return nil
}

// escapeString escapes s for a single-quoted ClickHouse string literal.
func escapeString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}
