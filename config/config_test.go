package config

import (
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/fault"
)

func TestParseAge(t *testing.T) {
	cases := map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, " 2d ": 48 * time.Hour,
	}
	for in, want := range cases {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "xd", "30", "1.5d", "soon", "-3d"} {
		if _, err := ParseAge(bad); err == nil && bad != "" {
			t.Errorf("ParseAge(%q) accepted", bad)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		field  string
	}{
		{func(c *Config) { c.AdminAddr = "nonsense" }, "ULTRAMCP_ADMIN_ADDR"},
		{func(c *Config) { c.LLM = "gpt" }, "ULTRAMCP_LLM"},
		{func(c *Config) { c.LLM = "anthropic" }, "ANTHROPIC_API_KEY"},
		{func(c *Config) { c.DatabaseURL = "mysql://x" }, "ULTRAMCP_DATABASE_URL"},
		{func(c *Config) { c.LLMCallTimeout = 20 * time.Minute }, "ULTRAMCP_LLM_TIMEOUT"},
		{func(c *Config) { c.Retention = time.Minute }, "ULTRAMCP_RETENTION"},
		{func(c *Config) { c.MaxRepoMB = 0 }, "ULTRAMCP_MAX_REPO_MB"},
		{func(c *Config) { c.Home = "" }, "ULTRAMCP_HOME"},
	}
	for _, tc := range cases {
		c := Default()
		tc.mutate(&c)
		err := c.Validate()
		if fault.FieldOf(err) != tc.field {
			t.Errorf("want an error naming %s, got %v", tc.field, err)
		}
	}
	c := Default()
	c.ServiceAddr = ":9999"
	if err := c.Validate(); err != nil || c.ServiceAddr != "127.0.0.1:9999" || !strings.HasPrefix(c.Home, "/") {
		t.Errorf("defaults: %v %s %s", err, c.ServiceAddr, c.Home)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("ULTRAMCP_HOME", "/tmp/x")
	t.Setenv("ULTRAMCP_RETENTION", "30d")
	t.Setenv("ULTRAMCP_ALLOW_LOCAL_REPOS", "true")
	t.Setenv("OPENAI_API_KEY", "sk-1")
	c := FromEnv()
	if c.Home != "/tmp/x" || c.Retention != 30*24*time.Hour || !c.AllowLocalRepos || c.OpenAIAPIKey != "sk-1" {
		t.Errorf("FromEnv = %+v", c)
	}
	if strings.Contains(c.String(), "sk-1") {
		t.Error("String() shows the API key")
	}
}
