package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/ultramcp/durable/limits"
)

// Limits is the ledger of the providers' limits in this store: every
// service process on it (several versions, replicas on one PostgreSQL)
// shares its counts. A settle is one transaction of the store's writer;
// each process settles a key a few times a second, not once per call
// (limits/ledger.go).
func (s *Store) Limits() limits.Ledger { return limitLedger{s} }

type limitLedger struct{ s *Store }

var _ limits.Ledger = limitLedger{}

func ms(t time.Time) int64 { return t.UnixMilli() }

// Settle implements limits.Ledger: the key's state read under its row's
// lock (in SQLite the write takes the database's, in PostgreSQL the
// row's), decided by limits.KeyState.Settle, and what changed written
// back.
func (l limitLedger) Settle(ctx context.Context, lim limits.Limit, holder string, want limits.Claim, r limits.Report, now time.Time) (limits.Grant, error) {
	var g limits.Grant
	err := l.s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		k, err := l.load(ctx, tx, lim, now, true)
		if err != nil {
			return err
		}
		before := *k
		var changed map[int64]limits.Second
		g, changed = k.Settle(lim, holder, want, r, now)
		if k.Allowed != before.Allowed || k.Successes != before.Successes || !k.Cooling.Equal(before.Cooling) {
			if _, err := l.s.execIn(ctx, tx, `UPDATE limit_keys SET allowed = ?, successes = ?, cooling_until = ? WHERE limit_key = ?`, k.Allowed, k.Successes, ms(k.Cooling), lim.Key); err != nil {
				return err
			}
		}
		for _, d := range changed {
			if _, err := l.s.execIn(ctx, tx, `INSERT INTO limit_window (limit_key, second, requests, tokens, throttled) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (limit_key, second) DO UPDATE SET requests = limit_window.requests + excluded.requests, tokens = limit_window.tokens + excluded.tokens, throttled = limit_window.throttled + excluded.throttled`,
				lim.Key, d.At, d.Requests, d.Tokens, d.Throttled); err != nil {
				return err
			}
		}
		c, ok := k.Claims[holder]
		if !ok {
			_, err := l.s.execIn(ctx, tx, `DELETE FROM limit_claims WHERE limit_key = ? AND holder = ?`, lim.Key, holder)
			return err
		}
		_, err = l.s.execIn(ctx, tx, `INSERT INTO limit_claims (limit_key, holder, slots, requests, tokens, second, in_use, waiting, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (limit_key, holder) DO UPDATE SET slots = excluded.slots, requests = excluded.requests, tokens = excluded.tokens, second = excluded.second,
in_use = excluded.in_use, waiting = excluded.waiting, expires_at = excluded.expires_at`,
			lim.Key, holder, c.Slots, c.Requests, c.Tokens, c.Second, c.InUse, c.Waiting, ms(c.Expires))
		return err
	})
	return g, err
}

// load reads lim's state; lock (in a writer's transaction) makes its key
// row if missing, which locks it, and drops what expired.
func (l limitLedger) load(ctx context.Context, q querier, lim limits.Limit, now time.Time, lock bool) (*limits.KeyState, error) {
	k := &limits.KeyState{Claims: map[string]limits.Holding{}}
	var until int64
	var err error
	if lock {
		err = q.QueryRowContext(ctx, l.s.d.rebind(`INSERT INTO limit_keys (limit_key, allowed, successes, cooling_until) VALUES (?, ?, 0, 0)
ON CONFLICT (limit_key) DO UPDATE SET limit_key = excluded.limit_key RETURNING allowed, successes, cooling_until`), lim.Key, lim.Concurrency).Scan(&k.Allowed, &k.Successes, &until)
	} else {
		err = q.QueryRowContext(ctx, l.s.d.rebind(`SELECT allowed, successes, cooling_until FROM limit_keys WHERE limit_key = ?`), lim.Key).Scan(&k.Allowed, &k.Successes, &until)
		if err == sql.ErrNoRows {
			k.Allowed, err = lim.Concurrency, nil
		}
	}
	if err != nil {
		return nil, transient(err)
	}
	if until > 0 {
		k.Cooling = time.UnixMilli(until)
	}
	if lock {
		if tx, ok := q.(*sql.Tx); ok {
			if _, err := l.s.execIn(ctx, tx, `DELETE FROM limit_claims WHERE limit_key = ? AND expires_at < ?`, lim.Key, ms(now)); err != nil {
				return nil, err
			}
			if _, err := l.s.execIn(ctx, tx, `DELETE FROM limit_window WHERE limit_key = ? AND second <= ?`, lim.Key, now.Add(-2*time.Minute).Unix()); err != nil {
				return nil, err
			}
		}
	}
	rows, err := q.QueryContext(ctx, l.s.d.rebind(`SELECT holder, slots, requests, tokens, second, in_use, waiting, expires_at FROM limit_claims WHERE limit_key = ?`), lim.Key)
	if err != nil {
		return nil, transient(err)
	}
	for rows.Next() {
		var h string
		var c limits.Holding
		var expires int64
		if err := rows.Scan(&h, &c.Slots, &c.Requests, &c.Tokens, &c.Second, &c.InUse, &c.Waiting, &expires); err != nil {
			rows.Close()
			return nil, transient(err)
		}
		c.Expires = time.UnixMilli(expires)
		k.Claims[h] = c
	}
	rows.Close()
	rows, err = q.QueryContext(ctx, l.s.d.rebind(`SELECT second, requests, tokens, throttled FROM limit_window WHERE limit_key = ? ORDER BY second`), lim.Key)
	if err != nil {
		return nil, transient(err)
	}
	defer rows.Close()
	for rows.Next() {
		var sec limits.Second
		if err := rows.Scan(&sec.At, &sec.Requests, &sec.Tokens, &sec.Throttled); err != nil {
			return nil, transient(err)
		}
		k.Window = append(k.Window, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, transient(err)
	}
	k.Expire(now)
	return k, nil
}

// querier is a transaction or the database.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Usage implements limits.Ledger.
func (l limitLedger) Usage(ctx context.Context, t limits.Table, now time.Time) ([]limits.Usage, error) {
	var out []limits.Usage
	for _, lim := range t {
		k, err := l.load(ctx, l.s.db, lim, now, false)
		if err != nil {
			return nil, err
		}
		out = append(out, k.Usage(lim, now))
	}
	return out, nil
}

// Waiting implements limits.Waits: the wait a run is in, for its status
// ("" once it no longer waits).
func (s *Store) Waiting(ctx context.Context, run, note string) error {
	return s.execTx(ctx, `UPDATE workflow_metadata SET waiting = ? WHERE id = ?`, nullString(note), run)
}
