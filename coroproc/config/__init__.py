"""coroproc.config — see docs/architecture.md; arrives with the executive work."""
