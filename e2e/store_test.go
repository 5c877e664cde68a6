package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/pgtest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/debate"
)

// The seed's three queries, verbatim.
var seedQueries = []string{
	`SELECT * FROM workflow_metadata ORDER BY created_at DESC LIMIT 10;`,
	`SELECT agent_name, COUNT(*) as executions, AVG(duration_ms) as avg_duration FROM agent_executions GROUP BY agent_name;`,
	`SELECT * FROM workflow_metadata WHERE status = 'failed';`,
}

// shell runs a database shell and returns its output lines.
func shell(t *testing.T, name string, args ...string) []string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (apt-get install %s)", name, map[string]string{"psql": "postgresql-client", "sqlite3": "sqlite3"}[name])
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestSeedQueriesOnBothBackends(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			fake := llmtest.New(llmtest.Behavior{})
			defer fake.Close()
			var dbURL string
			if backend == "postgres" {
				dbURL = pgtest.Start(t).URL()
			}
			env := stacktest.Start(t, stacktest.Options{LLM: "openai", DatabaseURL: dbURL,
				ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey}})
			startDebate(t, env, "ok-1", `{"topic":"Seed queries","participants":`+threeParticipants+`,"rounds":2,"delayBetweenRounds":"0s"}`)
			if _, err := attach(t, env, "ok-1", 30*time.Second); err != nil {
				t.Fatal(err)
			}
			fake.Set("bad-1/", llmtest.Behavior{Status: 401})
			startDebate(t, env, "bad-1", `{"topic":"Seed queries","participants":`+threeParticipants+`,"rounds":2}`)
			if _, err := attach(t, env, "bad-1", 30*time.Second); err == nil {
				t.Fatal("bad-1 succeeded")
			}

			recent := query(t, env.Cfg.SQLitePath(), dbURL, seedQueries[0])
			if len(recent) != 2 || !strings.HasPrefix(recent[0], "bad-1|") || !strings.HasPrefix(recent[1], "ok-1|") {
				t.Errorf("query 1 rows:\n%s", strings.Join(recent, "\n"))
			}
			if !strings.Contains(recent[1], "|completed|") || !strings.Contains(recent[0], "|failed|") {
				t.Errorf("statuses wrong:\n%s", strings.Join(recent, "\n"))
			}
			perAgent := query(t, env.Cfg.SQLitePath(), dbURL, seedQueries[1])
			got := map[string]string{}
			for _, row := range perAgent {
				f := strings.Split(row, "|")
				got[f[0]] = f[1]
			}
			// ok-1: 3 participants × 2 rounds + moderator; bad-1 recorded nothing.
			if fmt.Sprint(got) != "map[alice:2 dave:2 ivan:2 moderator:1]" {
				t.Errorf("query 2 rows: %v", perAgent)
			}
			failed := query(t, env.Cfg.SQLitePath(), dbURL, seedQueries[2])
			if len(failed) != 1 || !strings.Contains(failed[0], "openai: 401 unauthorized") {
				t.Errorf("query 3 rows: %v", failed)
			}
		})
	}
}

// query runs one query with the database's own shell, unchanged.
func query(t *testing.T, sqlitePath, pgURL, q string) []string {
	t.Helper()
	if pgURL != "" {
		return shell(t, "psql", pgURL, "-X", "-q", "-A", "-t", "-F", "|", "-c", q)
	}
	return shell(t, "sqlite3", sqlitePath, q)
}

// openStoreDB opens the store's database for assertions.
func openStoreDB(t *testing.T, env *stacktest.Env, dbURL string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", "file:"+env.Cfg.SQLitePath()+"?mode=ro&_pragma=busy_timeout(5000)"
	if dbURL != "" {
		driver, dsn = "pgx", dbURL
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// assertRows checks the store holds exactly one completed execution per
// (round, participant) and one completed workflow row.
// The ids and steps are the test's own, so they are spelled into the SQL,
// which then reads the same on both databases.
func assertRows(t *testing.T, db *sql.DB, id string, rounds int, participants []string) {
	t.Helper()
	var n int
	var status string
	if err := db.QueryRow(`SELECT COUNT(*), MIN(status) FROM workflow_metadata WHERE id = '`+id+`'`).Scan(&n, &status); err != nil {
		t.Fatal(err)
	}
	if n != 1 || status != workflow.StatusCompleted {
		t.Errorf("workflow_metadata: %d row(s), status %q; want 1, completed", n, status)
	}
	for r := 1; r <= rounds; r++ {
		for _, p := range participants {
			step := fmt.Sprintf("round-%d/%s", r, p)
			if err := db.QueryRow(`SELECT COUNT(*) FROM agent_executions WHERE workflow_id = '` + id + `' AND step = '` + step + `' AND status = 'completed'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("agent_executions for %s: %d rows, want 1", step, n)
			}
		}
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM agent_executions WHERE workflow_id = '` + id + `'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := rounds*len(participants) + 1; n != want {
		t.Errorf("agent_executions: %d rows, want %d", n, want)
	}
}

func TestPostgresOutageMidDebate(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	fake := llmtest.New(llmtest.Behavior{Latency: 300 * time.Millisecond})
	defer fake.Close()
	// Store writes retry with the backoff capped at 100 ms: in the outage
	// below they make hundreds of attempts, where any attempt budget would
	// have run out; the code path has none.
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", DatabaseURL: pg.URL(),
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "ULTRAMCP_STORE_RETRY_CAP=100ms"}})
	id := "pg-outage"
	// Round 2's calls wait until PostgreSQL is down, so that their rows
	// cannot have been written before it (on a loaded machine the stop
	// took longer than a round).
	hold := make(chan struct{})
	fake.Set(id+"/round-2/", llmtest.Behavior{Latency: 300 * time.Millisecond, Hold: hold})
	startDebate(t, env, id, `{"topic":"Outage","participants":`+threeParticipants+`,"rounds":3,"delayBetweenRounds":"0s"}`)
	waitForRound(t, env, id, 1)
	pg.Stop(t)
	close(hold)
	down := time.Now()
	// The calls of the next round finish while PostgreSQL is down; the
	// record written beside them keeps retrying, so the debate waits
	// before the moderator.
	waitFor(t, 20*time.Second, func() bool { return len(fake.Calls(id+"/round-3/")) == 3 })
	c := cliFor(t, env)
	c.env = append(c.env, "ULTRAMCP_DATABASE_URL="+pg.URL())
	if out, err := c.run("status", id); err != nil || !strings.Contains(out, "store:      unreachable") || !strings.Contains(out, "running") {
		t.Errorf("status during the outage: %v\n%s", err, out)
	}
	time.Sleep(time.Until(down.Add(25 * time.Second)))
	if n := len(fake.Calls(id + "/moderator")); n != 0 {
		t.Fatalf("the debate went on to the moderator with the store down")
	}
	if b, _ := os.ReadFile(env.Stack.Service().LogFile()); !strings.Contains(string(b), "metadata store unreachable") {
		t.Error("the service log does not say the store is unreachable")
	}
	pg.StartAgain(t)
	res, err := attach(t, env, id, 90*time.Second)
	if err != nil {
		t.Fatalf("debate after the outage: %v", err)
	}
	if len(res.Rounds) != 3 {
		t.Fatalf("rounds = %d", len(res.Rounds))
	}
	for label, n := range fake.Calls(id + "/") {
		if n != 1 {
			t.Errorf("%s called %d times: the outage must not repeat model calls", label, n)
		}
	}
	assertRows(t, openStoreDB(t, env, pg.URL()), id, 3, []string{"alice", "dave", "ivan"})
}

func waitForRound(t *testing.T, env *stacktest.Env, id string, rounds int) {
	t.Helper()
	waitFor(t, 30*time.Second, func() bool {
		p, err := env.Client.Progress(context.Background(), workflow.ChainOfDebate, id)
		if err != nil {
			return false
		}
		var prog debate.Progress
		return json.Unmarshal(p, &prog) == nil && len(prog.CompletedRounds) >= rounds
	})
}

func TestLargeDebateKeepsJournalEntriesSmall(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{Reasoning: 3000})
	defer fake.Close()
	env := fakeStack(t, fake)
	var ps []string
	for i := range 12 {
		ps = append(ps, fmt.Sprintf("%q", fmt.Sprintf("p%02d", i)))
	}
	id := "large-1"
	startDebate(t, env, id, `{"topic":"Large","participants":[`+strings.Join(ps, ",")+`],"rounds":10,"delayBetweenRounds":"0s"}`)
	res, err := attach(t, env, id, 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 10 || res.Transcript == nil {
		t.Fatalf("rounds %d, transcript %v", len(res.Rounds), res.Transcript)
	}
	rows, err := env.Client.Query(context.Background(), fmt.Sprintf(
		`SELECT j.index, j.entry_type, j.entry_json FROM sys_journal j JOIN sys_invocation i ON j.id = i.id
		 WHERE i.target_service_key = '%s' AND i.target_handler_name = 'run'`, id))
	if err != nil {
		t.Fatal(err)
	}
	// A round is one entry (its twelve answers), so at least the ten
	// rounds' are there.
	if len(rows) < 10 {
		t.Fatalf("only %d journal entries found", len(rows))
	}
	largest, largestType := 0, ""
	for _, r := range rows {
		var entry any
		if err := json.Unmarshal([]byte(r["entry_json"].(string)), &entry); err != nil {
			t.Fatal(err)
		}
		if n := len(entryText(entry)); n > largest {
			largest, largestType = n, fmt.Sprint(r["entry_type"])
		}
	}
	t.Logf("%d journal entries; the largest is %q with %d bytes", len(rows), largestType, largest)
	if largest >= 256<<10 {
		t.Errorf("largest journal entry is %d bytes, want < 256 KiB", largest)
	}
	// The full transcript, with every reasoning, is in the store.
	db := openStoreDB(t, env, "")
	var size int
	if err := db.QueryRow(`SELECT size FROM artifacts WHERE id = ?`, res.Transcript.ID).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if size < 120*3000 {
		t.Errorf("transcript artifact is %d bytes; it should hold all 120 full answers", size)
	}
}
