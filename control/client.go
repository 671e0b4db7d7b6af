package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Client talks to the control API on a Unix socket.
type Client struct {
	hc   *http.Client
	sock string
}

// NewClient makes a client for the API socket at sock.
func NewClient(sock string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
	return &Client{hc: &http.Client{Transport: tr}, sock: sock}
}

// do sends one request; out, if non-nil, receives the JSON answer. A
// response outside 2xx is an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// The host part is ignored: every connection goes to the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://argovisor"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.sock, unwrapURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("control socket %s: reading the answer: %w", c.sock, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if s, ok := out.(*string); ok {
		*s = string(data)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control socket %s: bad answer to %s %s: %w", c.sock, method, path, err)
	}
	return nil
}

func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// List returns every domain.
func (c *Client) List(ctx context.Context) ([]DomainInfo, error) {
	var out []DomainInfo
	return out, c.do(ctx, http.MethodGet, "/v1/domains", nil, &out)
}

// Stats returns one domain's counters.
func (c *Client) Stats(ctx context.Context, name string) (DomainStats, error) {
	var out DomainStats
	return out, c.do(ctx, http.MethodGet, "/v1/domains/"+url.PathEscape(name), nil, &out)
}

// Create builds and starts a domain from a JSON domain table.
func (c *Client) Create(ctx context.Context, domain []byte) (DomainInfo, error) {
	var out DomainInfo
	return out, c.do(ctx, http.MethodPost, "/v1/domains", domain, &out)
}

// Stop ends a domain through its exit path and returns it once stopped.
func (c *Client) Stop(ctx context.Context, name string) (DomainInfo, error) {
	var out DomainInfo
	return out, c.do(ctx, http.MethodPost, "/v1/domains/"+url.PathEscape(name)+"/stop", nil, &out)
}

// Destroy ends a domain now and forgets it.
func (c *Client) Destroy(ctx context.Context, name string) (DomainInfo, error) {
	var out DomainInfo
	return out, c.do(ctx, http.MethodDelete, "/v1/domains/"+url.PathEscape(name), nil, &out)
}

// Shutdown asks the VMM to stop every domain and exit.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/shutdown", nil, nil)
}

// Metrics returns the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var out string
	return out, c.do(ctx, http.MethodGet, "/metrics", nil, &out)
}
