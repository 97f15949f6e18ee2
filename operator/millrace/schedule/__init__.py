"""Cron schedules of flows: parsing, and the pure decision of what a schedule does now."""
