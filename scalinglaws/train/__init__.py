"""The bundled QAT trainer (see README)."""
