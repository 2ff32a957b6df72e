-- extentdb index schema, version 8: which host made each scan (the pool catalog on PostgreSQL records it
-- too; in a SQLite index every scan is this host's, but the record keeps both stores alike).
-- Never edit this file once shipped: add a new NNNN_name.sql instead.
ALTER TABLE scans ADD COLUMN host TEXT;
