-- Pages of the image list (`GET /v1/images?limit=&after=`, store-level paging) walk paths in byte order,
-- as SQLite compares them and as every listing sorts: indexes in the C collation let each page start at
-- its cursor instead of sorting every image.
-- Never edit this file once shipped: add a new NNNN_name.sql instead.
CREATE INDEX images_scanned_by_path_bytes ON images ((path COLLATE "C")) WHERE latest_scan_id IS NOT NULL;
CREATE INDEX scan_failures_by_path_bytes ON scan_failures ((path COLLATE "C"));
CREATE INDEX scans_by_image_only ON scans (image_id);
