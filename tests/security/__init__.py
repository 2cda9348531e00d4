"""The hostile-input suite: poison messages, evaluation bombs, quotas, the UI's
authentication matrix, token redaction and input fuzzing."""
