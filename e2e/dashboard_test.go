package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow/fullanalysis"
)

// browser starts headless Chromium (Debian's) for one test, closed when
// it ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1280, 800), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser, for as long as ctx lives: the
	// time limit goes on the contexts made from it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTime)
	return ctx
}

// shoot checks the page at a desktop's and a phone's size (no
// horizontal scroll), and with ULTRAMCP_SCREENSHOTS set (make
// screenshots) keeps a picture of each there as name-WxH.png.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("ULTRAMCP_SCREENSHOTS")
	for _, size := range [][2]int64{{390, 844}, {1280, 800}} {
		browse(t, ctx, chromedp.EmulateViewport(size[0], size[1]))
		if wide := page(t, ctx, chromedp.Evaluate[string](`document.documentElement.scrollWidth > window.innerWidth + 1 ? document.documentElement.scrollWidth + " > " + window.innerWidth : ""`)); wide != "" {
			// What sticks out (a wide table scrolls in its own box: not it).
			out := page(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("*")].filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0).slice(0, 8).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right) + " sw=" + e.scrollWidth + " cw=" + e.clientWidth + ": " + e.textContent.slice(0, 40))`))
			t.Errorf("%s at %d px scrolls sideways (%s): %q", name, size[0], wide, out)
		}
		if dir == "" {
			continue
		}
		png := page(t, ctx, chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%dx%d.png", name, size[0], size[1])), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// page runs one action of the page and returns its value.
func page[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// browse runs actions of the page in order.
func browse(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// The dashboard in a real browser: it asks for the token and refuses a
// wrong one; the workflows page lists runs; a 3-round debate's page shows
// round 1's answers growing while their calls still run, then round 2,
// without a reload; a topic and a model's answer holding <script> run no
// script and show as text.
func TestDashboardInABrowser(t *testing.T) {
	t.Parallel()
	const token = "tok-dashboard-7"
	fake := llmtest.New(llmtest.Behavior{ChunkEvery: 120 * time.Millisecond})
	t.Cleanup(fake.Close)
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", ServiceEnv: []string{
		"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "ULTRAMCP_API_TOKEN=" + token}})
	base := config.URL(env.Cfg.APIAddr)
	ctx := browser(t)

	browse(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`input[name=token]`))
	loginURL := page(t, ctx, chromedp.Location())
	browse(t, ctx, chromedp.SendKeys(`input[name=token]`, "not-the-token"), chromedp.Submit(`input[name=token]`),
		chromedp.WaitVisible(`input[name=token]`))
	failedText := page(t, ctx, chromedp.Text(`body`))
	if !strings.Contains(loginURL, "/login") || !strings.Contains(failedText, "not the API's token") {
		t.Fatalf("without the token: at %s, %q", loginURL, failedText)
	}
	browse(t, ctx, chromedp.SendKeys(`input[name=token]`, token), chromedp.Submit(`input[name=token]`), chromedp.WaitVisible(`#workflows`))

	names := disagreeing(2)
	hostile := `{"position": "<script>window.pwned2=1</script>", "reasoning": "<img src=x onerror=\"window.pwned3=1\">", "confidence": 0.6}`
	fake.Set("dash-1/round-1/"+names[0], llmtest.Behavior{ChunkEvery: 120 * time.Millisecond, Text: hostile})
	c := newAPIClient(t, env, token)
	body := fmt.Sprintf(`{"topic":"<script>window.pwned=1</script> Tabs or spaces?","participants":["%s"],"rounds":3,"delayBetweenRounds":"1s"}`, strings.Join(names, `","`))
	if ans := c.do("POST", "/chain-of-debate", "/chain-of-debate", []byte(body), map[string]string{"Idempotency-Key": "dash-1"}); ans.Status != 202 {
		t.Fatalf("start: %d %s", ans.Status, ans.Body)
	}
	step := "round-1/" + names[1]
	box := `#live [data-step="` + step + `"] .text`
	browse(t, ctx, chromedp.Navigate(base+"/runs/dash-1"))
	page(t, ctx, chromedp.Evaluate[int](`window.__samePage = 1`))
	browse(t, ctx, chromedp.WaitVisible(box))
	first := page(t, ctx, chromedp.TextContent(box))
	// The fake writes a piece every 120 ms: wait for the next ones.
	waitFor(t, 20*time.Second, func() bool { return len(page(t, ctx, chromedp.TextContent(box))) > len(first)+10 })
	later := page(t, ctx, chromedp.TextContent(box))
	calls := fake.Calls("dash-1/" + step)["dash-1/"+step]
	shoot(t, ctx, "debate-streaming")
	if calls != 0 || len(later) <= len(first) {
		t.Errorf("round 1's answer while its call runs (%d done): %q, then %q", calls, first, later)
	}
	browse(t, ctx, chromedp.WaitVisible(`#content section[data-round="2"]`))
	same := page(t, ctx, chromedp.Evaluate[bool](`window.__samePage === 1`))
	pwned := page(t, ctx, chromedp.Evaluate[bool](`!!(window.pwned || window.pwned2 || window.pwned3)`))
	topic := page(t, ctx, chromedp.TextContent(`.topic`))
	content := page(t, ctx, chromedp.TextContent(`#content`))
	shoot(t, ctx, "debate")
	if !same {
		t.Error("round 2 came with a reload")
	}
	if pwned || !strings.Contains(topic, "<script>window.pwned=1</script>") || !strings.Contains(content, "<script>window.pwned2=1</script>") {
		t.Errorf("hostile text: a script ran (%v), or it was not shown as text: topic %q", pwned, topic)
	}
	browse(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#workflows`))
	listed := page(t, ctx, chromedp.TextContent(`#workflows`))
	shoot(t, ctx, "workflows")
	browse(t, ctx, chromedp.Navigate(base+"/start/chain-of-debate"), chromedp.WaitVisible(`form.start`))
	shoot(t, ctx, "start")
	if !strings.Contains(listed, "dash-1") || !strings.Contains(listed, "chain-of-debate") {
		t.Errorf("the workflows page: %q", listed)
	}
}

// A full-analysis waiting for approval, in the browser: its analysis's
// page shows the planted findings by severity, and approving it from its
// page completes it.
func TestDashboardApprovesAFullAnalysis(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	repotest.Build(t, base)
	addr := repotest.Daemon(t, base)
	fake := llmtest.New(llmtest.Behavior{})
	t.Cleanup(fake.Close)
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", RepoHosts: []string{"127.0.0.1"},
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey}})
	body := `{"repository":"git://` + addr + `/app","includeDebate":false,"requireApproval":true}`
	if _, err := env.Client.Start(context.Background(), fullanalysis.Name, "dash-fa", []byte(body)); err != nil {
		t.Fatal(err)
	}
	web := config.URL(env.Cfg.APIAddr)
	ctx := browser(t)
	browse(t, ctx, chromedp.Navigate(web+"/runs/dash-fa"), chromedp.WaitVisible(`form.approve`))
	shoot(t, ctx, "full-analysis-approval")
	scan := page(t, ctx, chromedp.Evaluate[string](`(() => { for (const a of document.querySelectorAll(".tree a")) if (a.textContent.includes("security-scan")) return a.getAttribute("href"); return "" })()`))
	if scan == "" {
		t.Fatal("no link to the scan child on the full-analysis page")
	}
	browse(t, ctx, chromedp.Navigate(web+scan), chromedp.WaitVisible(`section.sev`))
	severities := page(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("section.sev")].map(s => s.dataset.severity)`))
	findings := page(t, ctx, chromedp.TextContent(`#content`))
	shoot(t, ctx, "scan")
	if len(severities) == 0 || severities[0] != "critical" && severities[0] != "high" || !strings.Contains(findings, ".go:") {
		t.Errorf("the scan's page: severities %v, findings %.400q", severities, findings)
	}
	browse(t, ctx, chromedp.Navigate(web+"/runs/dash-fa"), chromedp.WaitVisible(`form.approve`),
		chromedp.SendKeys(`form.approve input[name=reason]`, "looks right"), chromedp.SendKeys(`form.approve input[name=by]`, "dana"),
		chromedp.Click(`form.approve button[value=approve]`))
	waitFor(t, 2*time.Minute, func() bool {
		st, _ := chromedp.Run(ctx, chromedp.TextContent(`#content .meta .status`))
		return st == "completed" || st == "partial"
	})
	browse(t, ctx, chromedp.Navigate(web+"/runs/dash-fa/trace"), chromedp.WaitVisible(`table.waterfall`))
	shoot(t, ctx, "trace")
	out, err := env.Client.Output(context.Background(), fullanalysis.Name, "dash-fa")
	if err != nil || !strings.Contains(string(out), `"by":"dana"`) || !strings.Contains(string(out), `"approved":true`) {
		t.Errorf("approved from the page: %v %.300s", err, out)
	}
}
