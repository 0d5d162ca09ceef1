-- A client's `Idempotency-Key` on an upload. A client that lost the answer
-- (its connection dropped, the server restarted) sends the upload again with
-- the same key and gets the dataset the first attempt made, never a second
-- one. One key per tenant; the key goes with its dataset when that is deleted.
ALTER TABLE datasets
    ADD COLUMN upload_key text CHECK (char_length(upload_key) BETWEEN 1 AND 255);
CREATE UNIQUE INDEX datasets_upload_key ON datasets (tenant_id, upload_key)
    WHERE upload_key IS NOT NULL;
