-- Run once by the MariaDB image's entrypoint on the bootstrap node (docker-compose.yml, profile `ha`):
-- HAProxy's mysql-check logs in as this user (no password, no privileges). Galera replicates it.
CREATE USER IF NOT EXISTS 'haproxy'@'%';
