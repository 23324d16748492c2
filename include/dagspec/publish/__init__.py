"""Publish targets beyond the warehouse table: object-store files, BigQuery, Google Sheets."""
