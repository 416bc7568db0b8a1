"""How a run meets this machine and its libraries: where it executes (placement) and which library
messages are silenced. Used by both train and evaluate, so it sits below them (torch, config, errors only)."""
