package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"time"

	"github.com/ultramcp/durable/limits"
)

// Limits is the ledger of the providers' limits in this store: every
// service process on it (several versions, replicas on one PostgreSQL)
// shares its counts. A permit is one transaction of the store's writer,
// which batches those that come together.
func (s *Store) Limits() limits.Ledger { return limitLedger{s} }

type limitLedger struct{ s *Store }

var _ limits.Ledger = limitLedger{}

func ms(t time.Time) int64 { return t.UnixMilli() }

// keyRow locks key's row (made if missing) for the transaction: in SQLite
// the write takes the database's lock, in PostgreSQL the row's, so the
// counts read after it are the ones the grant is decided on.
func (l limitLedger) keyRow(ctx context.Context, tx *sql.Tx, lim limits.Limit) (allowed, successes int, cooling time.Time, err error) {
	var until int64
	err = tx.QueryRowContext(ctx, l.s.d.rebind(`INSERT INTO limit_keys (limit_key, allowed, successes, cooling_until) VALUES (?, ?, 0, 0)
ON CONFLICT (limit_key) DO UPDATE SET limit_key = excluded.limit_key RETURNING allowed, successes, cooling_until`), lim.Key, lim.Concurrency).Scan(&allowed, &successes, &until)
	return allowed, successes, time.UnixMilli(until), transient(err)
}

// Take implements limits.Ledger.
func (l limitLedger) Take(ctx context.Context, lim limits.Limit, holder string, tokens int, now time.Time) (lease, why string, again time.Duration, err error) {
	err = l.s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		lease, why, again = "", "", 0
		allowed, _, cooling, err := l.keyRow(ctx, tx, lim)
		if err != nil {
			return err
		}
		if _, err := l.s.execIn(ctx, tx, `DELETE FROM limit_leases WHERE limit_key = ? AND expires_at < ?`, lim.Key, ms(now)); err != nil {
			return err
		}
		if _, err := l.s.execIn(ctx, tx, `DELETE FROM limit_window WHERE limit_key = ? AND second <= ?`, lim.Key, now.Add(-time.Minute).Unix()); err != nil {
			return err
		}
		inFlight, requests, used, oldest, err := l.counts(ctx, tx, lim.Key)
		if err != nil {
			return err
		}
		if why, again = limits.Refuse(lim, now, cooling, inFlight, allowed, requests, used, tokens, oldest); why != "" {
			return nil
		}
		id := newLease()
		if _, err := l.s.execIn(ctx, tx, `INSERT INTO limit_leases (lease, limit_key, holder, expires_at, second, tokens) VALUES (?, ?, ?, ?, ?, ?)`, id, lim.Key, holder, ms(now.Add(limits.Lease)), now.Unix(), tokens); err != nil {
			return err
		}
		if _, err := l.s.execIn(ctx, tx, `INSERT INTO limit_window (limit_key, second, requests, tokens, throttled) VALUES (?, ?, 1, ?, 0)
ON CONFLICT (limit_key, second) DO UPDATE SET requests = limit_window.requests + 1, tokens = limit_window.tokens + excluded.tokens`, lim.Key, now.Unix(), tokens); err != nil {
			return err
		}
		lease = id
		return nil
	})
	return lease, why, again, err
}

// counts are key's permits held, and the last minute's calls, tokens and
// the start of its oldest second with any: the window has a row a second,
// so a permit reads at most sixty.
func (l limitLedger) counts(ctx context.Context, tx *sql.Tx, key string) (inFlight, requests, used int, oldest time.Time, err error) {
	if err = tx.QueryRowContext(ctx, l.s.d.rebind(`SELECT COUNT(*) FROM limit_leases WHERE limit_key = ?`), key).Scan(&inFlight); err != nil {
		return 0, 0, 0, time.Time{}, transient(err)
	}
	var first int64
	err = tx.QueryRowContext(ctx, l.s.d.rebind(`SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(tokens), 0), COALESCE(MIN(second), 0) FROM limit_window WHERE limit_key = ?`), key).Scan(&requests, &used, &first)
	return inFlight, requests, used, time.Unix(first, 0), transient(err)
}

func newLease() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Return implements limits.Ledger.
func (l limitLedger) Return(ctx context.Context, lim limits.Limit, lease string, used int, o limits.Outcome, now time.Time) error {
	return l.s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		allowed, successes, cooling, err := l.keyRow(ctx, tx, lim)
		if err != nil {
			return err
		}
		var second int64
		var estimated int
		err = tx.QueryRowContext(ctx, l.s.d.rebind(`DELETE FROM limit_leases WHERE lease = ? RETURNING second, tokens`), lease).Scan(&second, &estimated)
		switch {
		case err == nil:
			// The estimate corrected: the window counts what the call used.
			throttled := 0
			if o.Throttled {
				throttled = 1
			}
			if _, err := l.s.execIn(ctx, tx, `UPDATE limit_window SET tokens = tokens + ?, throttled = throttled + ? WHERE limit_key = ? AND second = ?`, used-estimated, throttled, lim.Key, second); err != nil {
				return err
			}
		case err != sql.ErrNoRows: // a lease that ran out has nothing to correct
			return transient(err)
		}
		inFlight, _, _, _, err := l.counts(ctx, tx, lim.Key)
		if err != nil {
			return err
		}
		a, n, c := limits.Adapt(lim, allowed, successes, cooling, inFlight, o, now)
		if a == allowed && n == successes && c.Equal(cooling) {
			return nil
		}
		_, err = l.s.execIn(ctx, tx, `UPDATE limit_keys SET allowed = ?, successes = ?, cooling_until = ? WHERE limit_key = ?`, a, n, ms(c), lim.Key)
		return err
	})
}

// Renew implements limits.Ledger.
func (l limitLedger) Renew(ctx context.Context, holder string, until time.Time) error {
	return l.s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := l.s.execIn(ctx, tx, `UPDATE limit_leases SET expires_at = ? WHERE holder = ?`, ms(until), holder)
		return err
	})
}

// Usage implements limits.Ledger.
func (l limitLedger) Usage(ctx context.Context, t limits.Table, now time.Time) ([]limits.Usage, error) {
	var out []limits.Usage
	for _, lim := range t {
		u := limits.Usage{Limit: lim, Allowed: lim.Concurrency}
		var until int64
		err := l.s.db.QueryRowContext(ctx, l.s.d.rebind(`SELECT allowed, cooling_until FROM limit_keys WHERE limit_key = ?`), lim.Key).Scan(&u.Allowed, &until)
		if err != nil && err != sql.ErrNoRows {
			return nil, transient(err)
		}
		if c := time.UnixMilli(until); until > 0 && now.Before(c) {
			u.CoolingUntil = c
		}
		if err := l.s.db.QueryRowContext(ctx, l.s.d.rebind(`SELECT COUNT(*) FROM limit_leases WHERE limit_key = ? AND expires_at >= ?`), lim.Key, ms(now)).Scan(&u.InFlight); err != nil {
			return nil, transient(err)
		}
		if err := l.s.db.QueryRowContext(ctx, l.s.d.rebind(`SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(tokens), 0), COALESCE(SUM(throttled), 0) FROM limit_window WHERE limit_key = ? AND second > ?`), lim.Key, now.Add(-time.Minute).Unix()).Scan(&u.Requests, &u.Tokens, &u.Throttled); err != nil {
			return nil, transient(err)
		}
		out = append(out, u)
	}
	return out, nil
}
