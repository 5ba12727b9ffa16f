"""Policy-as-code: the model, the match language, loading and validation."""
