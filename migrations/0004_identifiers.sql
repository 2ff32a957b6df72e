-- extentdb index schema, version 4: image and scan ids are never reused.
-- Never edit this file once shipped: add a new NNNN_name.sql instead.

-- SQLite gives a new row the largest id plus one, so forgetting the newest image (or gc removing the newest
-- scans) handed its id to the next one, and a client of the service holding that id reached a different
-- image. The largest id ever given is kept here; the writer numbers new images and scans past it, and these
-- triggers keep it up to date whoever inserts.
CREATE TABLE id_high_water (
    name            TEXT    PRIMARY KEY NOT NULL CHECK (name IN ('images', 'scans')),
    last            INTEGER NOT NULL CHECK (last >= 0)
) WITHOUT ROWID;
INSERT INTO id_high_water (name, last) SELECT 'images', coalesce(max(id), 0) FROM images;
INSERT INTO id_high_water (name, last) SELECT 'scans', coalesce(max(id), 0) FROM scans;

CREATE TRIGGER images_id_high_water AFTER INSERT ON images BEGIN
    UPDATE id_high_water SET last = max(last, NEW.id) WHERE name = 'images';
END;
CREATE TRIGGER scans_id_high_water AFTER INSERT ON scans BEGIN
    UPDATE id_high_water SET last = max(last, NEW.id) WHERE name = 'scans';
END;
