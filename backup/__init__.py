"""Backup and restore of OpenStack databases and files: engines, store, manifest, lock, retention, verify.

Layout: `proc` is the one place that spawns processes (pipelines, credentials through a file descriptor,
dry-run); `mysql`, `physical` and `files` are the engines; `store` (atomic backup directories, manifest,
lock), `retention`, `restore`, `verify` (throwaway MariaDB from `launcher`) build on them; `plugins` say
per component what to back up (entry-point group `opsctl.backup`); `run` orchestrates one backup.
"""
