-- Scratch-database load for timing ledger_verify (PostgreSQL only). DESTROYS the ledger it runs on.
-- Usage: createdb -T <a migrated database> scratch_ledger && psql -d scratch_ledger -f wallets/sql/ledger_million_postings.sql
--        DATABASE_URL=postgres://…/scratch_ledger python manage.py ledger_verify --progress always
-- 10,000 wallets, 500,000 entries of two postings each: 1,000,000 postings, all set-based.
SET session_replication_role = replica;  -- no trigger cost while loading a scratch database
TRUNCATE wallets_posting, wallets_entry, wallets_withdrawal, wallets_deposit CASCADE;
DELETE FROM wallets_account WHERE owner_id IS NOT NULL;
INSERT INTO accounts_user (id, password, is_superuser, email, role, first_name, last_name, is_active, is_staff, created_at)
SELECT 'usr_bench' || lpad(g::text, 17, '0'), '!', false, 'bench' || g || '@example.test',
       CASE WHEN g % 10 = 0 THEN 'merchant' ELSE 'customer' END, '', '', true, false, now()
  FROM generate_series(1, 10000) g
ON CONFLICT DO NOTHING;
INSERT INTO wallets_account (id, kind, owner_id, currency, balance, held, created_at, updated_at)
SELECT 'acc_bench' || lpad(g::text, 17, '0'), CASE WHEN g % 10 = 0 THEN 'merchant' ELSE 'customer' END,
       'usr_bench' || lpad(g::text, 17, '0'), 'usd', 0, 0, now(), now()
  FROM generate_series(1, 10000) g;
INSERT INTO wallets_account (id, kind, owner_id, currency, balance, held, created_at, updated_at)
VALUES ('acc_card_clearing_usd', 'card_clearing', NULL, 'usd', 0, 0, now(), now())
ON CONFLICT DO NOTHING;
INSERT INTO wallets_entry (id, kind, currency, reference, idempotency_key, memo, created_at)
SELECT 'ent_' || lpad(g::text, 26, '0'), 'deposit', 'usd', 'dep_' || lpad(g::text, 26, '0'), 'deposit:' || g, '', now()
  FROM generate_series(1, 500000) g;
INSERT INTO wallets_posting (id, entry_id, account_id, amount, balance_after, created_at)
SELECT 'txn_' || lpad((2 * g)::text, 26, '0'), 'ent_' || lpad(g::text, 26, '0'), 'acc_card_clearing_usd',
       -(100 + g % 5000), NULL, now()
  FROM generate_series(1, 500000) g;
INSERT INTO wallets_posting (id, entry_id, account_id, amount, balance_after, created_at)
SELECT 'txn_' || lpad((2 * g + 1)::text, 26, '0'), 'ent_' || lpad(g::text, 26, '0'),
       'acc_bench' || lpad((1 + g % 10000)::text, 17, '0'), 100 + g % 5000,
       SUM(100 + g % 5000) OVER (PARTITION BY g % 10000 ORDER BY g), now()
  FROM generate_series(1, 500000) g;
UPDATE wallets_account a SET balance = s.total
  FROM (SELECT account_id, SUM(amount) AS total FROM wallets_posting GROUP BY account_id) s
 WHERE s.account_id = a.id AND a.owner_id IS NOT NULL;
SET session_replication_role = DEFAULT;
ANALYZE wallets_account; ANALYZE wallets_entry; ANALYZE wallets_posting;
SELECT COUNT(*) AS postings FROM wallets_posting;
