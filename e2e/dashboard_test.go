package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/stacktest"
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
	if calls != 0 || len(later) <= len(first) {
		t.Errorf("round 1's answer while its call runs (%d done): %q, then %q", calls, first, later)
	}
	browse(t, ctx, chromedp.WaitVisible(`#content section[data-round="2"]`))
	same := page(t, ctx, chromedp.Evaluate[bool](`window.__samePage === 1`))
	pwned := page(t, ctx, chromedp.Evaluate[bool](`!!(window.pwned || window.pwned2 || window.pwned3)`))
	topic := page(t, ctx, chromedp.TextContent(`.topic`))
	content := page(t, ctx, chromedp.TextContent(`#content`))
	if !same {
		t.Error("round 2 came with a reload")
	}
	if pwned || !strings.Contains(topic, "<script>window.pwned=1</script>") || !strings.Contains(content, "<script>window.pwned2=1</script>") {
		t.Errorf("hostile text: a script ran (%v), or it was not shown as text: topic %q", pwned, topic)
	}
	browse(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#workflows`))
	listed := page(t, ctx, chromedp.TextContent(`#workflows`))
	if !strings.Contains(listed, "dash-1") || !strings.Contains(listed, "chain-of-debate") {
		t.Errorf("the workflows page: %q", listed)
	}
}
