-- When ingest last used a series, to prune the series nothing has reported within retention.
-- Ingest refreshes it at most about once an hour per series (control_plane/ingest/series.py),
-- so it is only accurate to that; the maintenance job allows for it. No index: the job scans
-- the table in pages by series_id, and leaving the column unindexed keeps those refreshes HOT
-- updates that never touch the series indexes. A constant default: no table rewrite.
ALTER TABLE series ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
